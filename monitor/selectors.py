"""Aggregates for the monitor's pages: every figure comes from counters and indexed reads.

Collections carry ``total_files`` / ``processed_files`` / ``bytes`` maintained with the content
changes, so no page counts contents row by row; the two reads that do touch contents (a
collection's status histogram and its file page) are bounded by one collection and by an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, NullIf, TruncMonth

from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    MESSAGE_UNDELIVERED,
    CollectionRelationType,
    ContentStatus,
    MessageStatus,
    RequestStatus,
    RequestType,
)

from .filters import SORTS, FileFilters, RequestFilters

RECENT_EVENTS = 20
DETAIL_EVENTS = 200
DETAIL_MESSAGES = 50


def requests_filtered(filters: RequestFilters, *, with_status: bool = True) -> QuerySet[Request]:
    """Requests matching the filters (``with_status=False``: all statuses, for the status links)."""
    queryset = Request.objects.all()
    if filters.since is not None:
        queryset = queryset.filter(created_at__gte=filters.since)
    if filters.request_type is not None:
        queryset = queryset.filter(request_type=filters.request_type)
    if with_status and filters.status is not None:
        queryset = queryset.filter(status=filters.status)
    if filters.scope:
        queryset = queryset.filter(scope=filters.scope)
    if filters.requester:
        queryset = queryset.filter(requester=filters.requester)
    if filters.search:
        term = filters.search
        match = Q(name__icontains=term) | Q(scope__icontains=term) | Q(requester__icontains=term)
        if term.isdigit() and len(term) <= 18:
            match |= Q(pk=int(term)) | Q(workload_id=int(term))
        queryset = queryset.filter(match)
    return queryset


def _input_side(field: str) -> Coalesce:
    """A request's input counter ``field``, or its output one when the input carries none (stage-in)."""
    return Coalesce(NullIf(f"in_{field}", 0), f"out_{field}", 0)


def campaign_summary(filters: RequestFilters) -> dict[str, int]:
    """Requests, input files and bytes, processed files: from the collections' counters.

    A request's input figures are its input collection's counters, or its output collection's when
    the input carries none: a stage-in keeps the dataset's files (and counters) on the output side.
    """
    requests = _with_collection_counters(requests_filtered(filters))
    sums = requests.aggregate(
        requests=Count("id"),
        input_files=Sum(_input_side("total_files")),
        input_bytes=Sum(_input_side("bytes")),
        input_processed_files=Sum(_input_side("processed_files")),
        output_files=Sum(Coalesce("out_total_files", 0)),
        output_processed_files=Sum(Coalesce("out_processed_files", 0)),
    )
    return {key: value or 0 for key, value in sums.items()}


def status_counts(filters: RequestFilters) -> list[dict[str, Any]]:
    """Requests per status under every filter but the status itself (the dashboard's links)."""
    rows = (
        requests_filtered(filters, with_status=False)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return [{"status": RequestStatus(status).label, "value": status, "count": n} for status, n in sorted(rows)]


def recent_events(limit: int = RECENT_EVENTS) -> list[Event]:
    """The latest status moves anywhere in the service (with their request)."""
    return list(Event.objects.select_related("request").order_by("-id")[:limit])


def _collection_column(relation: int, field: str) -> Subquery:
    first = Collection.objects.filter(request=OuterRef("pk"), relation_type=relation).order_by("id")
    output = BigIntegerField() if "bytes" in field else IntegerField()
    return Subquery(first.values(field)[:1], output_field=output)


def _with_collection_counters(queryset: QuerySet[Request]) -> QuerySet[Request]:
    """Requests with their first input and output collection's status and counters (subqueries)."""
    transform = Transform.objects.filter(request=OuterRef("pk")).order_by("id")
    return queryset.annotate(
        transform_status=Subquery(transform.values("status")[:1], output_field=IntegerField()),
        in_status=_collection_column(CollectionRelationType.INPUT, "status"),
        in_total_files=_collection_column(CollectionRelationType.INPUT, "total_files"),
        in_processed_files=_collection_column(CollectionRelationType.INPUT, "processed_files"),
        in_bytes=_collection_column(CollectionRelationType.INPUT, "bytes"),
        in_processed_bytes=_collection_column(CollectionRelationType.INPUT, "processed_bytes"),
        out_status=_collection_column(CollectionRelationType.OUTPUT, "status"),
        out_total_files=_collection_column(CollectionRelationType.OUTPUT, "total_files"),
        out_processed_files=_collection_column(CollectionRelationType.OUTPUT, "processed_files"),
        out_bytes=_collection_column(CollectionRelationType.OUTPUT, "bytes"),
        out_processed_bytes=_collection_column(CollectionRelationType.OUTPUT, "processed_bytes"),
    )


def _table_rows() -> QuerySet[Request]:
    """Requests with the columns of the original table, in one query (subqueries per page row)."""
    return _with_collection_counters(Request.objects.all()).select_related("owner")


@dataclass(frozen=True)
class TablePage:
    rows: list[Request]
    total: int
    page: int
    pages: int


def request_table(filters: RequestFilters) -> TablePage:
    """One page of the request table: two queries (the count of requests, the page itself)."""
    matching = requests_filtered(filters)
    total = matching.count()
    pages = max(1, -(-total // filters.page_size))
    page = min(filters.page, pages)
    column = SORTS[filters.sort]
    # The id breaks ties, so a page boundary never shows a row twice or skips one.
    ordering = [f"-{column}", "-id"] if filters.descending else [column, "id"]
    start = (page - 1) * filters.page_size
    rows = list(
        _table_rows().filter(pk__in=matching.values("pk")).order_by(*ordering)[start : start + filters.page_size]
    )
    return TablePage(rows=rows, total=total, page=page, pages=pages)


def request_with_parts(request_id: int) -> Request | None:
    """A request with its owner, transforms, processings and collections (four queries)."""
    return _table_rows().prefetch_related("transforms", "processings", "collections").filter(pk=request_id).first()


def content_histogram(*, collection_ids: list[int]) -> list[dict[str, Any]]:
    """Contents per status of the given collections (index-only scan of content_coll_status)."""
    rows = (
        Content.objects.filter(collection_id__in=collection_ids)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return [{"status": ContentStatus(status).label, "count": n} for status, n in sorted(rows)]


@dataclass(frozen=True)
class FilePage:
    rows: list[Content]
    first_id: int | None
    last_id: int | None
    has_next: bool
    has_previous: bool
    # A name search pages by name within a bounded window of the collection (see ``_search_page``):
    # where the next page starts (a name), and the last name the window read.
    next_name: str | None = None
    searched_to: str | None = None


_FILE_COLUMNS = ("id", "name", "scope", "status", "bytes", "retries", "status_changed_at", "updated_at", "path")
#: Names a file-name search reads per page, in name order from its cursor: a substring match cannot use
#: an index, so a search page reads at most this many names of the (collection, name) index (~10 ms per
#: 20,000 on the development machine) instead of every name of a 100,000-file dataset; "search further"
#: continues after the window.
SEARCH_WINDOW = 20_000


def content_page(*, collection: Collection, filters: FileFilters) -> FilePage:
    """One page of a collection's files: by id (keyset; the last page costs what the first does), or for
    a name search by name within a bounded window."""
    if filters.search:
        return _search_page(collection, filters)
    size = filters.page_size
    backward = bool(filters.before)
    if filters.status is not None:
        statuses = [filters.status]
    else:
        statuses = list(ContentStatus.values)
    # There is no (collection, id) index (a third index on contents slowed the carousel's inserts): the
    # (collection, status, id) index gives each status's files in id order, and merging one short range
    # per status gives the collection's files in id order. Without it PostgreSQL walks the primary key
    # from the start and filters on the collection: 1.1 s for the last of a million contents.
    branches = []
    for status in statuses:
        branch = Content.objects.filter(collection=collection, status=status).only(*_FILE_COLUMNS)
        if backward:
            branch = branch.filter(id__lt=filters.before).order_by("-id")
        else:
            branch = branch.filter(id__gt=filters.after).order_by("id")
        branches.append(branch[: size + 1])
    if len(branches) == 1:
        rows = list(branches[0])
    elif not connection.features.supports_slicing_ordering_in_compound:
        # SQLite (the embedded demo) cannot slice the branches of a UNION; its collections are small.
        plain = Content.objects.filter(collection=collection).only(*_FILE_COLUMNS)
        if backward:
            rows = list(plain.filter(id__lt=filters.before).order_by("-id")[: size + 1])
        else:
            rows = list(plain.filter(id__gt=filters.after).order_by("id")[: size + 1])
    else:
        rows = list(branches[0].union(*branches[1:], all=True).order_by("-id" if backward else "id")[: size + 1])
    if backward:
        has_previous = len(rows) > size
        rows = rows[:size][::-1]
        has_next = True
    else:
        has_next = len(rows) > size
        rows = rows[:size]
        has_previous = filters.after > 0
    return FilePage(
        rows=rows,
        first_id=rows[0].pk if rows else None,
        last_id=rows[-1].pk if rows else None,
        has_next=has_next,
        has_previous=has_previous,
    )


def _search_page(collection: Collection, filters: FileFilters) -> FilePage:
    """Files whose name contains the search term, by name, read from at most ``SEARCH_WINDOW`` names.

    Three queries on the (collection, name) unique index: where the window ends (the name
    ``SEARCH_WINDOW`` places on), the matching names within it (an index-only scan: the pattern is
    tested on the index entries, no table row is read for a name that does not match), and the page's
    rows. With a status filter the second reads the window's rows (status is not in that index).
    """
    size = filters.page_size
    names = Content.objects.filter(collection=collection, name__gt=filters.after_name).order_by("name")
    window_end = names.values_list("name", flat=True)[SEARCH_WINDOW - 1 : SEARCH_WINDOW].first()
    in_window = names.filter(name__lte=window_end) if window_end is not None else names
    matching = in_window.filter(name__contains=filters.search)
    if filters.status is not None:
        matching = matching.filter(status=filters.status)
    hits = list(matching.values_list("name", flat=True)[: size + 1])
    rows = list(
        Content.objects.filter(collection=collection, name__in=hits[:size]).only(*_FILE_COLUMNS).order_by("name")
    )
    if len(hits) > size:
        next_name = hits[size - 1]
    else:
        next_name = window_end  # a full window: the rest of the collection is still to search (else None)
    return FilePage(
        rows=rows,
        first_id=rows[0].pk if rows else None,
        last_id=rows[-1].pk if rows else None,
        has_next=next_name is not None,
        has_previous=bool(filters.after_name),
        next_name=next_name,
        searched_to=window_end,
    )


def content_detail(*, content_id: int) -> Content | None:
    return Content.objects.select_related("collection", "collection__request").filter(pk=content_id).first()


def request_events(*, request: Request, limit: int = DETAIL_EVENTS) -> list[Event]:
    """The latest status moves of a request and its parts, oldest first."""
    return list(Event.objects.filter(request=request).order_by("-id")[:limit])[::-1]


def request_messages(*, request: Request, limit: int = DETAIL_MESSAGES) -> list[Message]:
    return list(Message.objects.filter(request=request).defer("body").order_by("-id")[:limit])


# --- statistics -----------------------------------------------------------------------------


def statistics_per_month() -> dict[str, list[dict[str, Any]]]:
    """Requests, transforms and processings per month by status; processed files and bytes by type."""

    def per_month(queryset: QuerySet, label) -> list[dict[str, Any]]:
        rows = (
            queryset.order_by()
            .annotate(month=TruncMonth("created_at"))
            .values("month", "status")
            .annotate(n=Count("id"))
            .order_by("month", "status")
        )
        return [
            {"month": row["month"].strftime("%Y-%m"), "status": label(row["status"]), "count": row["n"]} for row in rows
        ]

    # The input side's counters, or the output side's where the input carries none (a stage-in keeps
    # its files on the output collection), as in the campaign summary.
    files = (
        _with_collection_counters(Request.objects.all())
        .order_by()
        .annotate(month=TruncMonth("created_at"))
        .values("month", "request_type")
        .annotate(files=Sum(_input_side("processed_files")), bytes=Sum(_input_side("processed_bytes")))
        .order_by("month", "request_type")
    )
    status_label = lambda value: RequestStatus(value).label  # noqa: E731
    return {
        "requests": per_month(Request.objects.all(), status_label),
        "transforms": per_month(Transform.objects.all(), status_label),
        "processings": per_month(Processing.objects.all(), lambda value: Processing.Status(value).label),
        "processed": [
            {
                "month": row["month"].strftime("%Y-%m"),
                "type": RequestType(row["request_type"]).label,
                "files": row["files"] or 0,
                "bytes": row["bytes"] or 0,
            }
            for row in files
        ],
    }


# --- outbox ---------------------------------------------------------------------------------


def outbox_state() -> dict[str, Any]:
    """Undelivered messages (partial index ``message_outbox``), the oldest one's time, Failed count."""
    undelivered = Message.objects.filter(status__in=sorted(MESSAGE_UNDELIVERED))
    oldest = undelivered.order_by("id").values_list("created_at", flat=True).first()
    return {
        "backlog": undelivered.count(),
        "oldest_undelivered_at": oldest,
        "failed": Message.objects.filter(status=MessageStatus.FAILED).count(),
    }


def requests_by_status() -> dict[str, int]:
    rows = Request.objects.order_by().values("status").annotate(n=Count("id")).values_list("status", "n")
    return {RequestStatus(status).label: n for status, n in rows}


def files_released() -> int:
    """Files announced as processed, over every request (its collections' counters)."""
    released = _with_collection_counters(Request.objects.all()).aggregate(n=Sum(_input_side("processed_files")))
    return released["n"] or 0
