"""Bulk content changes with their collection counters and file messages, in one transaction.

A campaign has ~10^6 contents, so nothing here works row by row: contents are created with
``bulk_create``, moved with one UPDATE per chunk whose WHERE clause enforces the transition
table, and the collection counters move by the same amounts with F() expressions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from requests_app.models import Collection, Content, Transform
from requests_app.models.statuses import ContentStatus
from requests_app.worktypes.base import ContentSpec, ContentUpdate, WorkType

from .bulk import insert_rows, text_array
from .messages import FileEntry, file_entry, file_messages, messages_write
from .transitions import bulk_transition, sources_for

# Names per UPDATE. PostgreSQL finds a chunk's rows by scanning the collection's pending contents
# and testing each against the (hashed) name array, so every chunk re-reads what earlier chunks
# left pending: large chunks keep that near linear (a 100k-file dataset in 2 statements, not 20)
# and cost 5-20 % less per file than 5000; 50k names are ~3 MB of SQL text.
CHUNK = 50_000
# Elsewhere (the SQLite demo) names go as bound variables, which SQLite caps at 32,766.
PORTABLE_CHUNK = 5000
FAILED_STATUSES = frozenset({ContentStatus.FAILED, ContentStatus.FINAL_FAILED})
# Per-row columns of a new content; the parent, the counters and the timestamps are the same for
# every row of a batch and go to insert_rows as constants.
CONTENT_COLUMNS = ("scope", "name", "content_type", "status", "bytes", "adler32", "path", "details")


def contents_create(
    *, transform: Transform, collection: Collection, specs: Sequence[ContentSpec], work_type: WorkType
) -> int:
    """Create contents in bulk (COPY on PostgreSQL), bump the counters, announce them if wanted."""
    now = timezone.now()
    rows = (
        (
            spec.scope or collection.scope,
            spec.name,
            spec.content_type,
            spec.status,
            spec.bytes,
            spec.adler32,
            spec.path,
            spec.details,
        )
        for spec in specs
    )
    constants = {
        "collection_id": collection.pk,
        "retries": 0,
        "status_changed_at": now,
        "created_at": now,
        "updated_at": now,
    }
    insert_rows(Content, CONTENT_COLUMNS, rows, constants=constants)
    available = [spec for spec in specs if spec.status == ContentStatus.AVAILABLE]
    Collection.objects.filter(pk=collection.pk).update(
        total_files=F("total_files") + len(specs),
        bytes=F("bytes") + sum(spec.bytes for spec in specs),
        processed_files=F("processed_files") + len(available),
        processed_bytes=F("processed_bytes") + sum(spec.bytes for spec in available),
        failed_files=F("failed_files") + sum(1 for spec in specs if spec.status in FAILED_STATUSES),
        updated_at=now,
    )
    announced = [
        spec for spec in specs if work_type.announce_new_contents or spec.status in work_type.announced_statuses
    ]
    if announced:
        entries = [file_entry(s.scope or collection.scope, s.name, s.path, s.status) for s in announced]
        messages_write(
            file_messages(transform=transform, work_type_name=work_type.name, collection=collection, files=entries)
        )
    return len(specs)


def contents_apply_updates(
    *, transform: Transform, collections: dict[int, Collection], updates: Sequence[ContentUpdate], work_type: WorkType
) -> int:
    """Apply status updates named by content name; return how many contents actually changed.

    Updates a content may not make (an Available file reported Available again, a move the table
    forbids) match no row and are ignored, which makes a repeated poll harmless.
    """
    grouped: dict[tuple[int, int], list[ContentUpdate]] = defaultdict(list)
    for update in updates:
        grouped[(update.relation, update.status)].append(update)
    changed_total = 0
    announced: dict[int, list[FileEntry]] = defaultdict(list)
    with transaction.atomic():
        for (relation, new_status), group in grouped.items():
            collection = collections.get(relation)
            if collection is None:
                continue
            changed_total += _apply_group(collection, new_status, group, announced, work_type)
        for collection_id, entries in announced.items():
            collection = next(c for c in collections.values() if c.pk == collection_id)
            messages_write(
                file_messages(transform=transform, work_type_name=work_type.name, collection=collection, files=entries)
            )
    return changed_total


def _apply_group(
    collection: Collection,
    new_status: int,
    group: list[ContentUpdate],
    announced: dict[int, list[FileEntry]],
    work_type: WorkType,
) -> int:
    sources = sources_for(Content, new_status)
    by_name = {u.name: u for u in group}
    order = {u.name: index for index, u in enumerate(group)}
    names = list(by_name)
    now = timezone.now()
    changed = 0
    processed_delta = processed_bytes_delta = failed_delta = 0
    chunk_size = CHUNK if connection.vendor == "postgresql" else PORTABLE_CHUNK
    for start in range(0, len(names), chunk_size):
        chunk = names[start : start + chunk_size]
        if any(by_name[name].path is not None or by_name[name].details for name in chunk):
            rows = _move_with_paths(collection, chunk, sources, by_name, new_status, now)
        else:
            rows = _move_by_name(collection, chunk, sources, new_status, now)
        if not rows:
            continue
        changed += len(rows)
        # Announce in the order the work type reported (landing order), not in row id order.
        rows.sort(key=lambda row: order[row[1]])
        for content_id, name, scope, path, file_bytes, old_status in rows:
            if new_status == ContentStatus.AVAILABLE:
                processed_delta += 1
                processed_bytes_delta += file_bytes
            if old_status == ContentStatus.AVAILABLE:
                processed_delta -= 1
                processed_bytes_delta -= file_bytes
            failed_delta += (new_status in FAILED_STATUSES) - (old_status in FAILED_STATUSES)
            if new_status in work_type.announced_statuses:
                new_path = by_name[name].path if by_name[name].path is not None else path
                # The moved row's id comes with it: no lookup when the message is built.
                announced[collection.pk].append(file_entry(scope, name, new_path, new_status, content_id))
    if changed:
        Collection.objects.filter(pk=collection.pk).update(
            processed_files=F("processed_files") + processed_delta,
            processed_bytes=F("processed_bytes") + processed_bytes_delta,
            failed_files=F("failed_files") + failed_delta,
            updated_at=now,
        )
    return changed


# One statement per transform: the counters of its collections of one relation, counted from their contents
# (through the (collection, status, id) index); rows already right are not rewritten.
_RECOUNT = """
    UPDATE {collection} AS coll SET
        total_files = counted.total, bytes = counted.bytes, processed_files = counted.processed,
        processed_bytes = counted.processed_bytes, failed_files = counted.failed, updated_at = %(now)s
    FROM (
        SELECT coll.id,
               count(content.id) AS total,
               coalesce(sum(content.bytes), 0) AS bytes,
               count(content.id) FILTER (WHERE content.status = %(available)s) AS processed,
               coalesce(sum(content.bytes) FILTER (WHERE content.status = %(available)s), 0) AS processed_bytes,
               count(content.id) FILTER (WHERE content.status = ANY(%(failed)s)) AS failed
        FROM {collection} AS coll LEFT JOIN {content} AS content ON content.collection_id = coll.id
        WHERE coll.transform_id = %(transform)s AND coll.relation_type = %(relation)s
        GROUP BY coll.id
    ) AS counted
    WHERE coll.id = counted.id
      AND (coll.total_files, coll.bytes, coll.processed_files, coll.processed_bytes, coll.failed_files)
          IS DISTINCT FROM (counted.total, counted.bytes, counted.processed, counted.processed_bytes, counted.failed)
"""


def contents_recount(*, transform: Transform, relation: int) -> int:
    """Set the counters of ``transform``'s collections of ``relation`` from their contents; how many changed.

    For work types whose hot path moves contents without the counters (``WorkType.recounts_outputs``): the
    roll-up calls this before ``decide``. A move committed after the count schedules its own roll-up, which
    counts again, so the counters always end right.
    """
    if connection.vendor != "postgresql":
        return _recount_portable(transform, relation)
    with connection.cursor() as cursor:
        cursor.execute(
            _RECOUNT.format(collection=Collection._meta.db_table, content=Content._meta.db_table),
            {
                "now": timezone.now(),
                "available": ContentStatus.AVAILABLE,
                "failed": sorted(FAILED_STATUSES),
                "transform": transform.pk,
                "relation": relation,
            },
        )
        return cursor.rowcount


def _recount_portable(transform: Transform, relation: int) -> int:
    changed = 0
    for collection in Collection.objects.filter(transform=transform, relation_type=relation):
        contents = Content.objects.filter(collection=collection)
        available = contents.filter(status=ContentStatus.AVAILABLE)
        counters = {
            "total_files": contents.count(),
            "bytes": contents.aggregate(n=Sum("bytes"))["n"] or 0,
            "processed_files": available.count(),
            "processed_bytes": available.aggregate(n=Sum("bytes"))["n"] or 0,
            "failed_files": contents.filter(status__in=FAILED_STATUSES).count(),
        }
        if any(getattr(collection, field) != value for field, value in counters.items()):
            Collection.objects.filter(pk=collection.pk).update(**counters, updated_at=timezone.now())
            changed += 1
    return changed


# The rows a chunk moves, with their status before the move, in one statement: the names travel
# as one array parameter, and a SELECT then an UPDATE by id cost twice the index probes and, in
# Django's IN lookup, a third of the poll's CPU. ``before`` reads the statement's snapshot; the
# outer status test re-checks each row as it is locked, so a row changed meanwhile by someone
# else moves only if the table still allows it. (Only the claimed processing's poll moves its
# contents, so that race is theoretical; locking the rows first cost 10 % more.)
_MOVE_BY_NAME = """
    UPDATE {table} AS moved SET status = %s, status_changed_at = %s, updated_at = %s
    FROM (
        SELECT id, status FROM {table} WHERE collection_id = %s AND name = ANY(%s::text[]) AND status = ANY(%s)
    ) AS before
    WHERE moved.id = before.id AND moved.status = ANY(%s)
    RETURNING moved.id, moved.name, moved.scope, moved.path, moved.bytes, before.status
"""

MovedRow = tuple[int, str, str, str | None, int, int]  # id, name, scope, path, bytes, old status


def _move_by_name(
    collection: Collection, names: list[str], sources: frozenset[int], new_status: int, now
) -> list[MovedRow]:
    """Move the contents named ``names`` whose status is in ``sources``; return what moved."""
    if connection.vendor == "postgresql":
        allowed = sorted(sources)
        with connection.cursor() as cursor:
            cursor.execute(
                _MOVE_BY_NAME.format(table=Content._meta.db_table),
                [new_status, now, now, collection.pk, text_array(names), allowed, allowed],
            )
            return cursor.fetchall()
    rows = _rows_to_move(collection, names, sources)
    bulk_transition(Content.objects.filter(id__in=[row[0] for row in rows]), new_status, status_changed_at=now)
    return rows


def _rows_to_move(collection: Collection, names: list[str], sources: frozenset[int]) -> list[MovedRow]:
    return list(
        Content.objects.filter(collection=collection, name__in=names, status__in=sources)
        .order_by("id")
        .values_list("id", "name", "scope", "path", "bytes", "status")
    )


def _move_with_paths(
    collection: Collection,
    names: list[str],
    sources: frozenset[int],
    by_name: dict[str, ContentUpdate],
    new_status: int,
    now,
) -> list[MovedRow]:
    """Updates that also carry a path or details: one bulk_update instead of one UPDATE per row."""
    rows = _rows_to_move(collection, names, sources)
    objs = Content.objects.in_bulk([row[0] for row in rows])
    for content in objs.values():
        update = by_name[content.name]
        content.status = new_status
        content.status_changed_at = now
        content.updated_at = now
        if update.path is not None:
            content.path = update.path
        if update.details:
            content.details = {**content.details, **update.details}
    Content.objects.bulk_update(
        list(objs.values()), ["status", "status_changed_at", "updated_at", "path", "details"], batch_size=1000
    )
    return rows
