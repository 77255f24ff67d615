"""Aggregates for the monitor's pages: every figure comes from counters and indexed reads.

Collections carry ``total_files`` / ``processed_files`` / ``bytes`` maintained with the content
changes, so no page counts contents row by row; the two reads that do touch contents (a
collection's status histogram and its file page) are bounded by one collection and by an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import BigIntegerField, Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
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


def campaign_summary(filters: RequestFilters) -> dict[str, int]:
    """Requests, input files and bytes, processed files: from the collections' counters.

    A request's input figures are its input collection's counters, or its output collection's when
    the input carries none: a stage-in keeps the dataset's files (and counters) on the output side.
    """
    requests = _with_collection_counters(requests_filtered(filters))
    sums = requests.aggregate(
        requests=Count("id"),
        input_files=Sum(Coalesce(NullIf("in_total_files", 0), "out_total_files", 0)),
        input_bytes=Sum(Coalesce(NullIf("in_bytes", 0), "out_bytes", 0)),
        input_processed_files=Sum(Coalesce(NullIf("in_processed_files", 0), "out_processed_files", 0)),
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
        out_status=_collection_column(CollectionRelationType.OUTPUT, "status"),
        out_total_files=_collection_column(CollectionRelationType.OUTPUT, "total_files"),
        out_processed_files=_collection_column(CollectionRelationType.OUTPUT, "processed_files"),
        out_bytes=_collection_column(CollectionRelationType.OUTPUT, "bytes"),
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


def content_page(*, collection: Collection, filters: FileFilters) -> FilePage:
    """One page of a collection's files by id (keyset: as fast on the last page as on the first)."""
    queryset = Content.objects.filter(collection=collection).only(
        "id", "name", "scope", "status", "bytes", "retries", "status_changed_at", "updated_at", "path"
    )
    if filters.status is not None:
        queryset = queryset.filter(status=filters.status)
    if filters.search:
        # Case-sensitive LIKE (file names are): several times cheaper than ILIKE over 100,000 names.
        queryset = queryset.filter(name__contains=filters.search)
    size = filters.page_size
    if filters.before:
        rows = list(queryset.filter(id__lt=filters.before).order_by("-id")[: size + 1])
        has_previous = len(rows) > size
        rows = rows[:size][::-1]
        has_next = True
    else:
        rows = list(queryset.filter(id__gt=filters.after).order_by("id")[: size + 1])
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


def content_detail(*, content_id: int) -> Content | None:
    return Content.objects.select_related("collection", "collection__request").filter(pk=content_id).first()


def request_events(*, request: Request, limit: int = DETAIL_EVENTS) -> list[Event]:
    """The latest status moves of a request and its parts, oldest first."""
    return list(Event.objects.filter(request=request).order_by("-id")[:limit])[::-1]


def request_messages(*, request: Request, limit: int = DETAIL_MESSAGES) -> list[Message]:
    return list(Message.objects.filter(request=request).defer("body").order_by("-id")[:limit])


def requests_of_type(request_type: int, limit: int = 200) -> list[Request]:
    """The latest requests of one work type (the generic view of a work type's requests)."""
    return list(Request.objects.filter(request_type=request_type).order_by("-id")[:limit])


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

    files = (
        Collection.objects.filter(relation_type=CollectionRelationType.INPUT)
        .order_by()
        .annotate(month=TruncMonth("request__created_at"), request_type=F("request__request_type"))
        .values("month", "request_type")
        .annotate(files=Sum("processed_files"), bytes=Sum("processed_bytes"))
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
    """Files announced as processed, over every collection (their counters)."""
    return (
        Collection.objects.filter(relation_type=CollectionRelationType.INPUT).aggregate(n=Sum("processed_files"))["n"]
        or 0
    )
