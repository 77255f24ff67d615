"""Watchdog: the periodic safety net behind event hand-off.

Hand-off after commit is the fast path; this sweep finds work whose hand-off was lost (a worker
died, a broker restarted) and enqueues it again. Every task it enqueues is idempotent, so
enqueuing something that is in fact still running costs one no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from requests_app import handoffs
from requests_app.models import Message, Processing, Request, Transform
from requests_app.models.statuses import (
    PROCESSING_TERMINAL,
    MessageStatus,
    ProcessingStatus,
    RequestStatus,
)
from requests_app.worktypes.registry import get_work_type

from .claims import claim_free

logger = logging.getLogger(__name__)
# Rows re-enqueued per kind per sweep: enough to drain a backlog in a few sweeps without one
# sweep flooding the broker.
SWEEP_LIMIT = 500


def watchdog_sweep(*, stale_seconds: float | None = None) -> dict[str, int]:
    """Re-enqueue stale work; return counts per kind (for the log and the tests)."""
    now = timezone.now()
    stale = now - timedelta(seconds=stale_seconds if stale_seconds is not None else settings.IDDS_STALE_SECONDS)
    counts: dict[str, int] = {}

    def requeue(kind: str, queryset, hand_off: Callable[[int], None]) -> None:
        ids = list(queryset.values_list("pk", flat=True)[:SWEEP_LIMIT])
        # Stamp what we re-enqueue, so the next sweeps leave it alone for another stale period:
        # without it a backlog grows, every sweep copies it again, and the broker floods.
        queryset.model.objects.filter(pk__in=ids).update(updated_at=now)
        for pk in ids:
            hand_off(pk)
        counts[kind] = len(ids)

    requeue(
        "requests",
        Request.objects.filter(status__in=[RequestStatus.NEW, RequestStatus.THROTTLING], updated_at__lt=stale),
        handoffs.request_accepted,
    )
    requeue(
        "controls",
        Request.objects.filter(
            status__in=[
                RequestStatus.TO_CANCEL,
                RequestStatus.CANCELLING,
                RequestStatus.TO_EXPIRE,
                RequestStatus.EXPIRING,
                RequestStatus.TO_FINISH,
            ],
            updated_at__lt=stale,
        ).values_list("pk", flat=True),
        handoffs.request_stop_requested,
    )
    requeue(
        "transforms",
        Transform.objects.filter(status=RequestStatus.NEW, updated_at__lt=stale),
        handoffs.transform_created,
    )
    requeue(
        "submits",
        Processing.objects.filter(
            status__in=[ProcessingStatus.NEW, ProcessingStatus.SUBMITTING], updated_at__lt=stale
        ).filter(claim_free()),
        _submit_again,
    )
    # Transforms still running although all their processings ended: the roll-up was lost.
    requeue(
        "rollups",
        Transform.objects.filter(status=RequestStatus.TRANSFORMING, updated_at__lt=stale).exclude(
            processings__status__in=[s for s in ProcessingStatus if s not in PROCESSING_TERMINAL]
        ),
        handoffs.transform_changed,
    )
    overdue = Message.objects.filter(status=MessageStatus.NEW).filter(
        Q(next_attempt_at__isnull=True, created_at__lt=stale) | Q(next_attempt_at__lt=now)
    )
    counts["messages"] = 1 if overdue.exists() else 0
    if counts["messages"]:
        handoffs.messages_written()
    if any(counts.values()):
        logger.info("watchdog re-enqueued %s", counts)
    return counts


def _submit_again(processing_id: int) -> None:
    transform_type = Processing.objects.filter(pk=processing_id).values_list("transform__transform_type", flat=True)
    handoffs.processing_ready(processing_id, queue=get_work_type(transform_type.get()).queue)
