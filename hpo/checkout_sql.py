"""Checkout on PostgreSQL in one statement: find free points, mark them Processing, lease them.

The ORM needs a locking SELECT, an UPDATE and an INSERT inside BEGIN/COMMIT: five round trips to the
database per checkout, each a context switch on a busy machine. One statement in autocommit is atomic
all the same and takes one. ``hpo.services.points_checkout`` keeps the ORM path for other databases.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection

from hpo.models import PointLease
from requests_app.auth.principals import Principal
from requests_app.models import Collection, Content
from requests_app.models.statuses import CollectionRelationType, ContentStatus
from requests_app.services.prepared import PreparedStatement

# ``free`` walks the (collection, status, id) index in id order and stops after ``count`` points; the collection
# id is a scalar subquery (an InitPlan), because with a join PostgreSQL sorts every free point of the study.
# SKIP LOCKED lets concurrent checkouts take different points without waiting. The lease is an upsert in case
# a stale lease survived on a New point.
_LEASE_FREE_POINTS = """
WITH free AS (
    SELECT id FROM {content}
    WHERE collection_id = (SELECT id FROM {collection} WHERE transform_id = %(transform)s
                           AND relation_type = %(output)s ORDER BY id LIMIT 1)
      AND status = %(new)s
    ORDER BY id LIMIT %(count)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE {content} AS point SET status = %(processing)s, status_changed_at = %(now)s, updated_at = %(now)s
    FROM free WHERE point.id = free.id
    RETURNING point.*
), leased AS (
    INSERT INTO {lease} (content_id, transform_id, worker, user_id, worker_token_id, leased_at, expires_at, heartbeats)
    SELECT id, %(transform)s, %(worker)s, %(user)s, %(token)s, %(now)s, %(expires)s, 0 FROM taken
    ON CONFLICT (content_id) DO UPDATE SET transform_id = EXCLUDED.transform_id, worker = EXCLUDED.worker,
        user_id = EXCLUDED.user_id, worker_token_id = EXCLUDED.worker_token_id, leased_at = EXCLUDED.leased_at,
        expires_at = EXCLUDED.expires_at, heartbeats = 0
)
SELECT * FROM taken ORDER BY id
"""


@functools.cache
def _statement() -> PreparedStatement:
    """The statement, prepared: planning it took as long as running it."""
    sql = _LEASE_FREE_POINTS.format(
        content=Content._meta.db_table, collection=Collection._meta.db_table, lease=PointLease._meta.db_table
    )
    return PreparedStatement("idds_hpo_checkout", sql)


def lease_free_points(
    *, transform_id: int, principal: Principal, worker: str, count: int, now: datetime, expires_at: datetime
) -> list[Content]:
    """Lease up to ``count`` free points (oldest first) in one statement; the points carry their new lease."""
    params = {
        "transform": transform_id,
        "output": CollectionRelationType.OUTPUT,
        "new": ContentStatus.NEW,
        "processing": ContentStatus.PROCESSING,
        "count": count,
        "now": now,
        "expires": expires_at,
        "worker": worker,
        "user": principal.user_id,
        "token": principal.worker_token_id,
    }
    points = list(Content.objects.raw(_statement().sql_for_call(), params))
    for point in points:
        point.hpo_lease = PointLease.granted(
            point, transform_id=transform_id, worker=worker, principal=principal, leased_at=now, expires_at=expires_at
        )
    return points


def is_supported() -> bool:
    """Writable CTEs and SKIP LOCKED: PostgreSQL."""
    return connection.vendor == "postgresql"
