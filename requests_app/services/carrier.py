"""Carrier: submit processings to the outside world and poll them.

Both steps go the same way (``_claimed_step``): claim the processing by compare-and-swap with an
expiry, call the work type outside any transaction (it may be slow I/O), and map its errors: a
``TransientError`` backs off and retries, a ``PermanentError`` fails the processing with the
reason. The result is then applied in one short transaction: content changes, new contents, their
messages and the processing's status commit together or not at all, and the next step is handed
off after commit (``requests_app.handoffs``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app import handoffs
from requests_app.errors import PermanentError, TransientError
from requests_app.models import Collection, Processing, ProcessingStatus
from requests_app.models.errorlog import errors_appended
from requests_app.models.statuses import (
    PROCESSING_POLLABLE,
    PROCESSING_SUBMITTABLE,
    PROCESSING_TERMINAL,
    REQUEST_ACTIVE,
)
from requests_app.worktypes.base import PollResult, SubmitResult, WorkType
from requests_app.worktypes.registry import get_work_type

from .claims import claim_free, processing_claim, processing_release, worker_name
from .contents import contents_apply_updates, contents_create
from .transitions import transition

logger = logging.getLogger(__name__)
# After a rescue by polls_enqueue_due, the same processing is not rescued again for this long.
RESCUE_SECONDS = 30.0


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential back-off: base * 2^(attempt-1), capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class _Claimed:
    """A processing this worker holds a claim on, with the work type that serves it."""

    processing: Processing
    holder: str
    work_type: WorkType


def _claimed_step(
    processing_id: int, *, step: str, statuses, call: Callable[[_Claimed], Any]
) -> tuple[_Claimed, Any] | str:
    """Claim, call the work type, map its errors; the claim and result, or what happened instead."""
    holder = worker_name()
    processing = processing_claim(processing_id, statuses=statuses, holder=holder)
    if processing is None:
        return "not claimable"
    if processing.request.status not in REQUEST_ACTIVE:
        # Suspended or being cancelled: resume and abort hand off what they need again.
        processing_release(processing, holder=holder)
        return "request not active"
    claimed = _Claimed(processing, holder, get_work_type(processing.transform.transform_type))
    try:
        return claimed, call(claimed)
    except TransientError as exc:
        return _retry_later(claimed, step=step, message=str(exc))
    except PermanentError as exc:
        _processing_end(claimed, ProcessingStatus.FAILED, reason=f"{step} refused: {exc}")
        return "failed"


def _start_submit(claimed: _Claimed) -> SubmitResult:
    if claimed.processing.status == ProcessingStatus.NEW:
        transition(claimed.processing, ProcessingStatus.SUBMITTING, actor=claimed.holder)
    return claimed.work_type.submit(claimed.processing)


def processing_submit(*, processing_id: int) -> str:
    """Submit a New processing (or one whose submitter died mid-way, still Submitting)."""
    outcome = _claimed_step(processing_id, step="submit", statuses=PROCESSING_SUBMITTABLE, call=_start_submit)
    if isinstance(outcome, str):
        return outcome
    claimed, result = outcome
    processing = claimed.processing
    with transaction.atomic():
        transition(
            processing,
            result.status if result.status is not None else ProcessingStatus.SUBMITTED,
            actor=claimed.holder,
            reason=f"submitted {result.external_id}".strip(),
            fields={
                "external_id": result.external_id or processing.external_id,
                "processing_metadata": {**processing.processing_metadata, **result.metadata},
                "submitted_at": timezone.now(),
                "next_poll_at": timezone.now() + timedelta(seconds=result.first_poll_in),
                "claimed_by": "",
                "claimed_until": None,
            },
        )
        for hand_off in result.after_commit:
            transaction.on_commit(hand_off)
        if processing.status in PROCESSING_POLLABLE:
            handoffs.poll_due(processing.pk, queue=claimed.work_type.queue, countdown=result.first_poll_in)
        elif processing.status in PROCESSING_TERMINAL:
            handoffs.transform_changed(processing.transform_id)
    return "submitted"


def processing_poll(*, processing_id: int) -> str:
    """Poll a submitted processing once and apply what changed."""
    outcome = _claimed_step(
        processing_id, step="poll", statuses=PROCESSING_POLLABLE, call=lambda c: c.work_type.poll(c.processing)
    )
    if isinstance(outcome, str):
        return outcome
    claimed, result = outcome
    return _apply_poll(claimed, result)


def _apply_poll(claimed: _Claimed, result: PollResult) -> str:
    processing, work_type = claimed.processing, claimed.work_type
    transform = processing.transform
    with transaction.atomic():
        collections = {c.relation_type: c for c in Collection.objects.filter(transform=transform)}
        changed = contents_apply_updates(
            transform=transform, collections=collections, updates=result.updates, work_type=work_type
        )
        if result.new_contents:
            target = collections[result.new_contents_relation]
            changed += contents_create(
                transform=transform, collection=target, specs=result.new_contents, work_type=work_type
            )
        period = _next_period(processing.poll_period, changed=bool(changed) or result.status is not None)
        delay = result.next_poll_in if result.next_poll_in is not None else period
        fields = {
            "poll_period": period,
            "poll_count": processing.poll_count + 1,
            "next_poll_at": timezone.now() + timedelta(seconds=delay),
            "claimed_by": "",
            "claimed_until": None,
            "retries": 0,
        }
        if result.metadata:
            fields["processing_metadata"] = {**processing.processing_metadata, **result.metadata}
        if result.error:
            fields["errors"] = errors_appended(processing.errors, result.error)
        for hand_off in result.after_commit:
            transaction.on_commit(hand_off)
        new_status = result.status if result.status is not None else processing.status
        if new_status in PROCESSING_TERMINAL:
            fields["finished_at"] = timezone.now()
            fields["next_poll_at"] = None
        if new_status != processing.status:
            transition(processing, new_status, actor=claimed.holder, reason=result.error or "", fields=fields)
        else:
            Processing.objects.filter(pk=processing.pk).update(updated_at=timezone.now(), **fields)
        if new_status in PROCESSING_TERMINAL:
            handoffs.transform_changed(transform.pk)
        else:
            handoffs.poll_due(processing.pk, queue=work_type.queue, countdown=delay)
    return f"changed {changed}"


def _next_period(period: float, *, changed: bool) -> float:
    """Poll again soon while things change; back off exponentially (capped) while they do not."""
    if changed:
        return settings.IDDS_POLL_MIN_SECONDS
    return min(settings.IDDS_POLL_MAX_SECONDS, max(period, 0.5) * 2)


def _retry_later(claimed: _Claimed, *, step: str, message: str) -> str:
    """Count a transient failure on the row; fail for good past ``IDDS_MAX_RETRIES``, else back off."""
    processing = claimed.processing
    retries = processing.retries + 1
    if retries > settings.IDDS_MAX_RETRIES:
        _processing_end(claimed, ProcessingStatus.FAILED, reason=f"{step} failed {retries} times: {message}")
        return "failed"
    errors = errors_appended(processing.errors, message)
    queue = claimed.work_type.queue
    with transaction.atomic():
        if step == "submit":
            delay = backoff_seconds(retries)
            # It stays Submitting and keeps the claim for the back-off: the claim's expiry is the retry timer.
            Processing.objects.filter(pk=processing.pk, claimed_by=claimed.holder).update(
                retries=retries,
                errors=errors,
                claimed_until=timezone.now() + timedelta(seconds=delay),
                updated_at=timezone.now(),
            )
            handoffs.processing_ready(processing.pk, queue=queue, countdown=delay + 0.1)
        else:
            delay = backoff_seconds(retries, cap=settings.IDDS_POLL_MAX_SECONDS)
            processing_release(
                processing,
                holder=claimed.holder,
                retries=retries,
                errors=errors,
                next_poll_at=timezone.now() + timedelta(seconds=delay),
            )
            handoffs.poll_due(processing.pk, queue=queue, countdown=delay)
    logger.warning("%s of processing %s failed (%s); retry %s in %.0fs", step, processing.pk, message, retries, delay)
    return "retry"


def _processing_end(claimed: _Claimed, status: int, *, reason: str) -> None:
    processing = claimed.processing
    with transaction.atomic():
        transition(
            processing,
            status,
            actor=claimed.holder,
            reason=reason,
            fields={
                "errors": errors_appended(processing.errors, reason),
                "finished_at": timezone.now(),
                "next_poll_at": None,
                "claimed_by": "",
                "claimed_until": None,
            },
        )
        handoffs.transform_changed(processing.transform_id)


def polls_enqueue_due(*, limit: int = 500, grace_seconds: float = 2.0) -> int:
    """Safety net behind the countdown hand-off: re-enqueue polls that are overdue."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    due = list(
        Processing.objects.filter(status__in=PROCESSING_POLLABLE, next_poll_at__lte=cutoff)
        .filter(claim_free())
        .order_by("next_poll_at")
        .values_list("pk", "transform__transform_type")[:limit]
    )
    # Push the due time on: if the worker is busy, the next tick must not enqueue the same polls
    # again (a backlog would snowball); the poll itself sets the real next due time.
    Processing.objects.filter(pk__in=[pk for pk, _ in due]).update(
        next_poll_at=timezone.now() + timedelta(seconds=RESCUE_SECONDS)
    )
    for pk, transform_type in due:
        handoffs.poll_due(pk, queue=get_work_type(transform_type).queue)
    return len(due)


def processings_create(*, transform, specs) -> list[Processing]:
    """Create processings and hand each to the carrier on its work type's queue after commit."""
    queue = get_work_type(transform.transform_type).queue
    processings = [
        Processing.objects.create(
            transform=transform,
            request_id=transform.request_id,
            processing_metadata=spec.metadata,
            poll_period=settings.IDDS_POLL_MIN_SECONDS,
        )
        for spec in specs
    ]
    for processing in processings:
        handoffs.processing_ready(processing.pk, queue=queue)
    return processings
