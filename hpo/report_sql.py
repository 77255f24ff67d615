"""A report on PostgreSQL in one statement: lock the point, drop its lease, record the loss, write the message.

The ORM path (``hpo.services._record_loss``) needs BEGIN, a locking SELECT, a DELETE, two UPDATEs, a SAVEPOINT,
the core's move, the counter UPDATE, the outbox INSERT, a RELEASE, a re-read and COMMIT: on a busy 2-core
machine each round trip to the database is a context switch, and they made a report cost 6-8 authenticated
no-op requests. One statement in autocommit is atomic all the same, and durable when it returns: the point is
Available with its loss, and its ``file_hyperparameteropt`` message is in the outbox, or neither happened.

What it does not do: move the collection counters. Every report of a study would update that one row, and a
row lock is held until the commit's WAL flush, so reports of a study would queue on it one flush at a time
(5 ms each on this machine under load: a ceiling of ~200 reports/s per study). The HPO work type asks the
roll-up to count the points instead (``WorkType.recounts_outputs``), which every report schedules anyway
(``hpo.handoffs.study_changed``): the counters trail the points by at most the debounce window.

It takes only the common case: a New or Processing point, not leased or leased to the caller, whose ``path``
is still the one generation wrote (``[{params}, null]``). Anything else (a repeat, an invalidated point,
someone else's lease, a FinalFailed point) matches no row and changes nothing; the caller then takes the ORM
path, which answers it with the same rules and errors as before.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from hpo.models import PointLease
from requests_app.auth.principals import Principal
from requests_app.models import Collection, Content, Message
from requests_app.models.statuses import CollectionRelationType, ContentStatus, MessageStatus
from requests_app.services.messages import new_msg_id
from requests_app.services.prepared import PreparedStatement
from requests_app.services.transitions import sources_for

#: What generation stores as a point's path before its loss is known: ``point_path(parameters, None)``.
#: ``json.dumps([p, None])`` is ``"[" + dumps(p) + ", null]"`` and ``json.dumps([p, loss])`` is
#: ``"[" + dumps(p) + ", " + dumps(loss) + "]"``, so replacing the tail is exactly ``point_path(p, loss)``.
UNREPORTED_TAIL = ", null]"

# ``snap`` reads the point by its unique (collection, name) with its lease, as of the statement's start; ``point``
# locks it, only when it may be reported (so the same loss again, the bench's and many retries' case, takes no
# lock and writes nothing: no WAL flush at its commit). A concurrent change between the two (a checkout, an
# expired lease given to another worker) changes the row version (``xmin``), and ``fit`` then keeps nothing, as
# it keeps nothing outside the common case (module docstring): the ORM path decides those. The UPDATE re-checks
# the status on the locked row. The message body is the one ``requests_app.services.messages.file_messages``
# builds for one file (jsonb: key order is not kept either way). The final SELECT returns the point as reported
# (``moved``) or, when nothing applied, as the statement found it.
_REPORT = """
WITH snap AS (
    SELECT c.id, c.xmin AS version, c.status, c.details, c.path, c.retries, c.status_changed_at, c.updated_at,
           l.content_id AS lease_id, l.user_id AS lease_user, l.worker_token_id AS lease_token,
           l.worker AS lease_worker
    FROM {content} c LEFT JOIN {lease} l ON l.content_id = c.id
    WHERE c.collection_id = (SELECT id FROM {collection} WHERE transform_id = %(transform)s
                             AND relation_type = %(output)s ORDER BY id LIMIT 1)
      AND c.name = %(name)s
), point AS (
    SELECT c.id, c.xmin AS version, c.status, c.path
    FROM {content} c WHERE c.id = (SELECT id FROM snap WHERE status = ANY(%(sources)s))
    FOR UPDATE
), fit AS (
    SELECT point.id, point.status, snap.lease_id, snap.lease_worker
    FROM point JOIN snap ON snap.id = point.id AND snap.version = point.version
    WHERE point.status = ANY(%(sources)s) AND right(point.path, {tail_length}) = %(tail)s
      AND (snap.lease_id IS NULL OR (snap.lease_user = %(user)s AND snap.lease_token IS NOT DISTINCT FROM %(token)s))
      AND (point.status <> %(processing)s OR snap.lease_id IS NOT NULL)
), dropped AS (
    DELETE FROM {lease} WHERE content_id IN (SELECT id FROM fit)
), moved AS (
    UPDATE {content} AS c SET
        status = %(available)s, status_changed_at = %(now)s, updated_at = %(now)s,
        path = left(c.path, -{null_length}) || %(loss_json)s || ']',
        details = c.details || %(fields)s::jsonb || jsonb_build_object(
            'late', fit.status <> %(new)s
                    AND (fit.lease_id IS NULL OR (%(worker)s <> '' AND fit.lease_worker <> %(worker)s))
        )
    FROM fit WHERE c.id = fit.id AND c.status = fit.status
    RETURNING c.id, c.collection_id, c.scope, c.name, c.path, c.details, c.status, c.status_changed_at, c.updated_at,
              c.retries
), announced AS (
    INSERT INTO {message} (msg_id, msg_type, status, request_id, transform_id, processing_id, collection_id,
                           workload_id, num_contents, body, attempts, next_attempt_at, last_error, delivered_to,
                           created_at, updated_at, delivered_at)
    SELECT %(msg_id)s, %(msg_type)s::text, %(message_new)s, %(request)s, %(transform)s, NULL, moved.collection_id,
           %(workload)s, 1,
           jsonb_build_object(
               'msg_type', %(msg_type)s::text, 'workload_id', %(workload)s::bigint, 'request_id', %(request)s::bigint,
               'transform_id', %(transform)s::bigint, 'relation_type', 'output',
               'files', jsonb_build_array(jsonb_build_object(
                   'scope', moved.scope, 'name', moved.name, 'path', moved.path, 'status', %(available_label)s::text,
                   'map_id', moved.id, 'content_id', moved.id, 'external_coll_id', NULL, 'external_content_id', NULL
               ))
           ),
           0, NULL, '', '[]'::jsonb, %(now)s, %(now)s, NULL
    FROM moved
)
SELECT true, moved.id, moved.status, moved.details::text, moved.path, moved.status_changed_at, moved.updated_at,
       moved.retries, false
FROM moved
UNION ALL
SELECT false, snap.id, snap.status, snap.details::text, snap.path, snap.status_changed_at, snap.updated_at,
       snap.retries, snap.lease_id IS NOT NULL
FROM snap WHERE NOT EXISTS (SELECT 1 FROM moved)
"""


@functools.cache
def _statement() -> PreparedStatement:
    """The statement, prepared: planning it took longer than running it."""
    sql = _REPORT.format(
        content=Content._meta.db_table,
        lease=PointLease._meta.db_table,
        collection=Collection._meta.db_table,
        message=Message._meta.db_table,
        tail_length=len(UNREPORTED_TAIL),
        null_length=len("null]"),
    )
    return PreparedStatement("idds_hpo_report", sql)


@dataclass(frozen=True)
class ReportOutcome:
    """What the statement did. ``point`` is the point after the report when ``moved``, else as it was (with
    ``leased`` saying whether it has a lease), or None when the study has no such point."""

    moved: bool
    point: Content | None
    leased: bool = False


def record_loss(
    *,
    transform_id: int,
    request_id: int,
    workload_id: int | None,
    msg_type: str,
    name: str,
    principal: Principal,
    worker: str,
    loss: float,
    metrics: dict[str, Any],
    now: datetime,
) -> ReportOutcome:
    """Record ``loss`` for point ``name`` in one statement when the common case applies (module docstring)."""
    sources = sorted(sources_for(Content, ContentStatus.AVAILABLE) & {ContentStatus.NEW, ContentStatus.PROCESSING})
    # The keys the ORM path sets (``hpo.services.point_report``); ``late`` is computed in the statement.
    fields = {"loss": loss, "metrics": metrics, "reported_by": worker or None, "reported_at": now.isoformat()}
    params = {
        "transform": transform_id,
        "request": request_id,
        "workload": workload_id,
        "output": CollectionRelationType.OUTPUT,
        "name": str(name),
        "sources": sources,
        "tail": UNREPORTED_TAIL,
        "user": principal.user_id,
        "token": principal.worker_token_id,
        "worker": worker,
        "new": ContentStatus.NEW,
        "processing": ContentStatus.PROCESSING,
        "available": ContentStatus.AVAILABLE,
        "available_label": ContentStatus.AVAILABLE.label,
        "now": now,
        "loss_json": json.dumps(loss),
        "fields": json.dumps(fields),
        "msg_id": new_msg_id(),
        "msg_type": msg_type,
        "message_new": MessageStatus.NEW,
    }
    with connection.cursor() as cursor:
        cursor.execute(_statement().sql_for_call(), params)
        row = cursor.fetchone()
    if row is None:
        return ReportOutcome(moved=False, point=None)
    moved, point_id, status, details, path, status_changed_at, updated_at, retries, leased = row
    point = Content(
        id=point_id,
        name=str(name),
        status=status,
        details=json.loads(details),
        path=path,
        retries=retries,
        status_changed_at=status_changed_at,
        updated_at=updated_at,
    )
    if moved or not leased:
        # Known to have no lease: cached as select_related caches a missing one, so reading it costs no query.
        Content.hpo_lease.related.set_cached_value(point, None)
    return ReportOutcome(moved=bool(moved), point=point, leased=bool(leased))


def is_supported() -> bool:
    """Writable CTEs: PostgreSQL."""
    return connection.vendor == "postgresql"
