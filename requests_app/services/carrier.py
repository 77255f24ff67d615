"""Carrier: submit processings to the outside world and poll them.

Both steps claim the processing by compare-and-swap with an expiry, call the work type outside
any transaction (it may be slow I/O), then apply the result in one short transaction: content
changes, new contents, their messages and the processing's status commit together or not at all.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from requests_app.errors import PermanentError, TransientError
from requests_app.models import Collection, Processing
from requests_app.models.statuses import PROCESSING_POLLABLE, PROCESSING_TERMINAL, REQUEST_ACTIVE, ProcessingStatus
from requests_app.worktypes.base import PollResult
from requests_app.worktypes.registry import get_work_type

from .claims import processing_claim, processing_release, worker_name
from .contents import contents_apply_updates, contents_create
from .transitions import transition

logger = logging.getLogger(__name__)
PS = ProcessingStatus
# After a rescue by enqueue_due_polls, the same processing is not rescued again for this long.
RESCUE_SECONDS = 30.0


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential back-off: base * 2^(attempt-1), capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def _error_entry(message: str) -> dict:
    return {"at": timezone.now().isoformat(), "error": message[:2000]}


def _record_error(processing: Processing, message: str) -> list[dict]:
    # The last ten errors are enough to diagnose; the count lives in ``retries``.
    return ([*(processing.errors or []), _error_entry(message)])[-10:]


def processing_submit(*, processing_id: int) -> str:
    """Submit a New processing (or one whose submitter died mid-way). Returns what happened."""
    holder = worker_name()
    now = timezone.now()
    # Submitting with an expired claim: the worker died between the outside call and the commit.
    resumable = Q(status=PS.NEW) | Q(status=PS.SUBMITTING)
    processing = processing_claim(processing_id, statuses=[PS.NEW, PS.SUBMITTING], holder=holder, extra=resumable)
    if processing is None:
        return "not claimable"
    if processing.request.status not in REQUEST_ACTIVE:
        processing_release(processing, holder=holder)
        return "request not active"
    if processing.status == PS.NEW:
        transition(processing, PS.SUBMITTING, actor=holder)
    work_type = get_work_type(processing.transform.transform_type)
    try:
        result = work_type.submit(processing)
    except TransientError as exc:
        return _submit_retry_later(processing, holder, str(exc))
    except PermanentError as exc:
        _processing_end(processing, PS.FAILED, holder=holder, reason=f"submit refused: {exc}")
        return "failed"
    first_poll = now + timedelta(seconds=result.first_poll_in)
    with transaction.atomic():
        transition(
            processing,
            result.status if result.status is not None else PS.SUBMITTED,
            actor=holder,
            reason=f"submitted {result.external_id}".strip(),
            fields={
                "external_id": result.external_id or processing.external_id,
                "processing_metadata": {**processing.processing_metadata, **result.metadata},
                "submitted_at": timezone.now(),
                "next_poll_at": first_poll,
                "claimed_by": "",
                "claimed_until": None,
            },
        )
        from requests_app.tasks import poll_processing as poll_processing_task

        if processing.status in PROCESSING_POLLABLE:
            transaction.on_commit(
                lambda: poll_processing_task.apply_async((processing.pk,), countdown=result.first_poll_in)
            )
        elif processing.status in PROCESSING_TERMINAL:
            _enqueue_rollup(processing.transform_id)
    return "submitted"


def _submit_retry_later(processing: Processing, holder: str, message: str) -> str:
    retries = processing.retries + 1
    if retries > settings.IDDS_MAX_RETRIES:
        _processing_end(processing, PS.FAILED, holder=holder, reason=f"submit failed {retries} times: {message}")
        return "failed"
    delay = backoff_seconds(retries)
    logger.warning("submit of processing %s failed (%s); retry %s in %.0fs", processing.pk, message, retries, delay)
    # Keep it Submitting and hold the claim for the back-off: the claim's expiry is the retry timer.
    Processing.objects.filter(pk=processing.pk, claimed_by=holder).update(
        retries=retries,
        errors=_record_error(processing, message),
        claimed_until=timezone.now() + timedelta(seconds=delay),
        updated_at=timezone.now(),
    )
    from requests_app.tasks import submit_processing as submit_processing_task

    submit_processing_task.apply_async((processing.pk,), countdown=delay + 0.1)
    return "retry"


def processing_poll(*, processing_id: int) -> str:
    """Poll a submitted processing once and apply what changed."""
    holder = worker_name()
    processing = processing_claim(processing_id, statuses=PROCESSING_POLLABLE, holder=holder)
    if processing is None:
        return "not claimable"
    if processing.request.status not in REQUEST_ACTIVE:
        # Suspended or being cancelled: resume and abort re-enqueue what they need.
        processing_release(processing, holder=holder)
        return "request not active"
    work_type = get_work_type(processing.transform.transform_type)
    try:
        result = work_type.poll(processing)
    except TransientError as exc:
        return _poll_retry_later(processing, holder, str(exc))
    except PermanentError as exc:
        _processing_end(processing, PS.FAILED, holder=holder, reason=f"poll refused: {exc}")
        return "failed"
    return _apply_poll(processing, result, holder, work_type)


def _apply_poll(processing: Processing, result: PollResult, holder: str, work_type) -> str:
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
            fields["errors"] = _record_error(processing, result.error)
        for hand_off in result.after_commit:
            transaction.on_commit(hand_off)
        new_status = result.status if result.status is not None else processing.status
        if new_status in PROCESSING_TERMINAL:
            fields["finished_at"] = timezone.now()
            fields["next_poll_at"] = None
        if new_status != processing.status:
            transition(processing, new_status, actor=holder, reason=result.error or "", fields=fields)
        else:
            Processing.objects.filter(pk=processing.pk).update(updated_at=timezone.now(), **fields)
        if new_status in PROCESSING_TERMINAL:
            _enqueue_rollup(transform.pk)
        else:
            from requests_app.tasks import poll_processing as poll_processing_task

            transaction.on_commit(lambda: poll_processing_task.apply_async((processing.pk,), countdown=delay))
    return f"changed {changed}"


def _next_period(period: float, *, changed: bool) -> float:
    """Poll again soon while things change; back off exponentially (capped) while they do not."""
    if changed:
        return settings.IDDS_POLL_MIN_SECONDS
    return min(settings.IDDS_POLL_MAX_SECONDS, max(period, 0.5) * 2)


def _poll_retry_later(processing: Processing, holder: str, message: str) -> str:
    retries = processing.retries + 1
    if retries > settings.IDDS_MAX_RETRIES:
        _processing_end(processing, PS.FAILED, holder=holder, reason=f"poll failed {retries} times: {message}")
        return "failed"
    delay = backoff_seconds(retries, cap=settings.IDDS_POLL_MAX_SECONDS)
    logger.warning("poll of processing %s failed (%s); retry %s in %.0fs", processing.pk, message, retries, delay)
    processing_release(
        processing,
        holder=holder,
        retries=retries,
        errors=_record_error(processing, message),
        next_poll_at=timezone.now() + timedelta(seconds=delay),
    )
    from requests_app.tasks import poll_processing as poll_processing_task

    poll_processing_task.apply_async((processing.pk,), countdown=delay)
    return "retry"


def _processing_end(processing: Processing, status: int, *, holder: str, reason: str) -> None:
    with transaction.atomic():
        transition(
            processing,
            status,
            actor=holder,
            reason=reason,
            fields={
                "errors": _record_error(processing, reason),
                "finished_at": timezone.now(),
                "next_poll_at": None,
                "claimed_by": "",
                "claimed_until": None,
            },
        )
        _enqueue_rollup(processing.transform_id)


def _enqueue_rollup(transform_id: int) -> None:
    from requests_app.tasks import rollup_transform as rollup_transform_task

    rollup_transform_task.delay_on_commit(transform_id)


def enqueue_due_polls(*, limit: int = 500, grace_seconds: float = 2.0) -> int:
    """Safety net behind the countdown hand-off: re-enqueue polls that are overdue."""
    from requests_app.tasks import poll_processing as poll_processing_task

    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    due = list(
        Processing.objects.filter(status__in=PROCESSING_POLLABLE, next_poll_at__lte=cutoff)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()))
        .order_by("next_poll_at")
        .values_list("pk", flat=True)[:limit]
    )
    # Push the due time on: if the worker is busy, the next tick must not enqueue the same polls
    # again (a backlog would snowball); the poll itself sets the real next due time.
    Processing.objects.filter(pk__in=due).update(next_poll_at=timezone.now() + timedelta(seconds=RESCUE_SECONDS))
    for pk in due:
        poll_processing_task.delay(pk)
    return len(due)
