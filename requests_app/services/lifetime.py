"""Request lifetime: the periodic sweep that expires requests past their ``expired_at``.

``request_create`` sets ``expired_at`` (submission + ``lifetime`` days). This sweep, run by beat,
moves overdue live requests to ToExpire through ``request_expire``; the abort path
(``request_control``) then stops their outside work and ends them Expired, announcing the output
collections. It works in bounded batches and reports whether more is due, so a backlog (a
service that was down for days) drains over a few runs without one run holding the worker.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from requests_app import handoffs
from requests_app.models import Request
from requests_app.models.statuses import REQUEST_EXPIRABLE, REQUEST_TERMINAL, RequestStatus

from .requests import request_expire

logger = logging.getLogger(__name__)
# Requests expired per run: each is one short transaction (lock, move, enqueue), a few ms, so a
# batch stays well under a second and the control tasks it enqueues do not flood the broker.
EXPIRE_BATCH = 200


def requests_expire_overdue(*, now: datetime | None = None, limit: int = EXPIRE_BATCH) -> tuple[int, bool]:
    """Expire up to ``limit`` overdue requests, oldest expiry first.

    Returns (requests expired, whether more are due). Requests that are already stopping (being
    aborted, finished or expired) are left to that path.
    """
    now = now or timezone.now()
    # exclude(terminal) repeats the partial index's condition, so the planner can use it.
    overdue = (
        Request.objects.exclude(status__in=sorted(REQUEST_TERMINAL))
        .filter(expired_at__lte=now, status__in=REQUEST_EXPIRABLE)
        .order_by("expired_at", "pk")
        # request_expire re-reads the row under lock: the sweep needs only what picks it.
        .only("pk", "status")
    )
    batch = list(overdue[: limit + 1])
    expired = 0
    for request in batch[:limit]:
        if request_expire(request=request).status == RequestStatus.TO_EXPIRE:
            expired += 1
    if expired:
        logger.info("expired %d request(s) past their lifetime", expired)
    more_due = len(batch) > limit
    if more_due:
        # A full batch: take the next one now rather than at the next beat.
        handoffs.expiry_backlog_remains()
    return expired, more_due
