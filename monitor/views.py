"""The core pages: dashboard, request table, request detail, file detail (each with its JSON twin)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from requests_app.models import Collection
from requests_app.models.statuses import (
    CollectionRelationType,
    ContentStatus,
    RequestStatus,
    RequestType,
)

from . import selectors, serialize
from .actions import ACTION_NAMES, may_act
from .filters import PAGE_SIZES, WINDOWS, FileFilters, RequestFilters
from .rendering import is_live, not_found, readable, respond


def _id(raw: str) -> int | None:
    """A path or query id: ASCII digits within bigint, else None (answered as not found)."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    number = int(raw)
    return number if 1 <= number < 2**63 else None


@require_GET
@readable
def home(request: HttpRequest) -> HttpResponse:
    """Campaign summary under the filters, requests per status as filter links, recent activity."""
    filters = RequestFilters.from_query(request.GET)
    summary = selectors.campaign_summary(filters)
    counts = selectors.status_counts(filters)
    events = selectors.recent_events()
    return respond(
        request,
        "monitor/home.html",
        {
            "filters": filters,
            "summary": summary,
            "counts": [{**row, "query": filters.query(status=row["value"])} for row in counts],
            "events": [serialize.event_row(event) for event in events],
            "types": RequestType.choices,
            "windows": WINDOWS,
            "live": True,
        },
        lambda: {
            "filters": filters.as_dict(),
            "summary": summary,
            "status_counts": counts,
            "recent_events": [serialize.event_row(event) for event in events],
        },
    )


@require_GET
@readable
def request_table(request: HttpRequest) -> HttpResponse:
    filters = RequestFilters.from_query(request.GET)
    page = selectors.request_table(filters)
    rows = [serialize.request_row(row) for row in page.rows]
    return respond(
        request,
        "monitor/requests.html",
        {
            "filters": filters,
            "page": page,
            "rows": rows,
            "page_sizes": PAGE_SIZES,
            "types": RequestType.choices,
            "statuses": RequestStatus.choices,
            "windows": WINDOWS,
            "previous_query": filters.query(page=page.page - 1) if page.page > 1 else None,
            "next_query": filters.query(page=page.page + 1) if page.page < page.pages else None,
            # The rows refresh while one of them is still active.
            "live": any(is_live(row.status) for row in page.rows),
        },
        lambda: {
            "filters": filters.as_dict(),
            "total": page.total,
            "page": page.page,
            "pages": page.pages,
            "rows": rows,
        },
    )


def _chosen_collection(collections: list[Collection], raw: str | None) -> Collection | None:
    """The collection whose files are listed: the one asked for, else the first input holding files,
    else the first holding files (a stage-in's files are on its output side), else the first."""
    wanted = _id(raw or "")
    for collection in collections:
        if collection.pk == wanted:
            return collection
    with_files = [c for c in collections if c.total_files]
    inputs = [c for c in with_files if c.relation_type == CollectionRelationType.INPUT]
    return (inputs or with_files or collections or [None])[0]


@require_GET
@readable
def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    number = _id(request_id)
    obj = selectors.request_with_parts(number) if number else None
    if obj is None:
        return not_found(request, f"request {request_id}")
    transforms = list(obj.transforms.all())
    processings = list(obj.processings.all())
    collections = list(obj.collections.all())
    chosen = _chosen_collection(collections, request.GET.get("coll"))
    file_filters = FileFilters.from_query(request.GET)
    files = selectors.content_page(collection=chosen, filters=file_filters) if chosen else None
    histogram = selectors.content_histogram(collection_ids=[chosen.pk]) if chosen else []
    events = selectors.request_events(request=obj)
    messages = selectors.request_messages(request=obj)
    data = {
        "request": serialize.request_row(obj)
        | {"owner": obj.owner.get_username() if obj.owner else None, "errors": obj.errors, "live": is_live(obj.status)},
        "transforms": [serialize.transform_row(t) for t in transforms],
        "processings": [serialize.processing_row(p) for p in processings],
        "collections": [serialize.collection_row(c) for c in collections],
        "files_collection_id": chosen.pk if chosen else None,
        "histogram": histogram,
        "files": [serialize.content_row(c) for c in files.rows] if files else [],
        "files_next_after": files.last_id if files and files.has_next and not file_filters.search else None,
        "files_previous_before": files.first_id if files and files.has_previous and not file_filters.search else None,
        # A name search pages by name (``fafter``) through bounded windows of the collection.
        "files_next_name": files.next_name if files else None,
        "files_searched_to": files.searched_to if files else None,
        "events": [serialize.event_row(e) for e in events],
        "messages": [serialize.message_row(m) for m in messages],
    }
    coll_query = f"coll={chosen.pk}&" if chosen else ""
    histogram_max = max((row["count"] for row in histogram), default=0)
    return respond(
        request,
        "monitor/request_detail.html",
        {
            # "request" and "messages" are the template's HTTP request and flash messages: renamed here.
            **{key: value for key, value in data.items() if key not in ("request", "messages")},
            "req": data["request"],
            "outbox": data["messages"],
            "file_status": ContentStatus(file_filters.status).label if file_filters.status is not None else "",
            "obj": obj,
            # One reverse() for the page, not one per file row.
            "file_base": reverse("monitor:file", args=["0"])[:-2],
            "chosen": chosen,
            "file_filters": file_filters,
            "files_page": files,
            "coll_query": coll_query,
            "next_files_query": _next_files_query(files, file_filters),
            "previous_files_query": _previous_files_query(files, file_filters),
            "histogram_rows": [
                {**row, "width": 100.0 * row["count"] / histogram_max if histogram_max else 0} for row in histogram
            ],
            "content_statuses": [member.label for member in ContentStatus],
            "page_sizes": PAGE_SIZES,
            "live": is_live(obj.status),
            "actions": ACTION_NAMES if may_act(request.user, obj) else (),
            "worktype_view": _worktype_view(obj),
            "errors_list": _errors(obj, transforms, processings),
        },
        lambda: data,
    )


@require_GET
@readable
def file_detail(request: HttpRequest, content_id: str) -> HttpResponse:
    number = _id(content_id)
    content = selectors.content_detail(content_id=number) if number else None
    if content is None:
        return not_found(request, f"file {content_id}")
    data = serialize.content_row(content) | {
        "collection_id": content.collection_id,
        "collection": f"{content.collection.scope}:{content.collection.name}",
        "request_id": content.collection.request_id,
        "adler32": content.adler32,
        "path": content.path,
        "details": content.details,
    }
    return respond(request, "monitor/file_detail.html", {"content": content, "data": data}, lambda: data)


def _next_files_query(files: selectors.FilePage | None, filters: FileFilters) -> str | None:
    if not files or not files.has_next:
        return None
    if filters.search:
        return filters.query(after_name=files.next_name)
    return filters.query(after=files.last_id, before=0)


def _previous_files_query(files: selectors.FilePage | None, filters: FileFilters) -> str | None:
    """The page before (by id), or for a name search its start (a search pages forward only)."""
    if not files or not files.has_previous:
        return None
    if filters.search:
        return filters.query(after_name="")
    return filters.query(before=files.first_id, after=0)


def _worktype_view(obj) -> tuple[str, str] | None:
    """The work type's own page for this request (title, URL), when it has one."""
    if obj.request_type == RequestType.ACTIVE_LEARNING:
        return "active-learning iterations", reverse("monitor:al_loop", args=[obj.pk])
    if obj.request_type == RequestType.HYPER_PARAMETER_OPT:
        return "HPO study", reverse("monitor:hpo_study", args=[obj.pk])
    if obj.request_type == RequestType.STAGE_IN:
        return "data carousel", reverse("monitor:carousel")
    return None


def _errors(obj, transforms, processings) -> list[dict[str, str]]:
    """Every error recorded on the request and its parts, newest last."""
    found = []
    for entity, row_id, errors in [
        ("request", obj.pk, obj.errors),
        *(("transform", t.pk, t.errors) for t in transforms),
        *(("processing", p.pk, p.errors) for p in processings),
    ]:
        for entry in errors if isinstance(errors, list) else ([errors] if errors else []):
            text = entry.get("error") or entry.get("reason") or str(entry) if isinstance(entry, dict) else str(entry)
            at = entry.get("at", "") if isinstance(entry, dict) else ""
            found.append({"entity": entity, "id": row_id, "at": at, "error": text})
    return found
