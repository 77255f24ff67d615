"""Conductor: deliver outbox messages to every configured sink, at least once, in order.

One worker delivers at a time (a named lease that expires by itself), in batches in id order,
so messages of one transform leave in the order they were written. A message is Delivered only
when every sink confirmed it. A failed message backs off exponentially, and so do the later
messages of its transform, which keeps their order; after ``IDDS_MESSAGE_MAX_ATTEMPTS`` (or a
refusal the sink calls permanent) it is Failed with the reason and can be re-queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from requests_app.errors import TransientError
from requests_app.models import AgentLease, Message
from requests_app.models.statuses import MessageStatus
from requests_app.sinks.base import OutgoingMessage, SendReport, Sink

from .claims import worker_name
from .transitions import bulk_transition, transition

logger = logging.getLogger(__name__)
LEASE_NAME = "conductor"
LEASE_SECONDS = 60
# A delivery run stops after this long and lets the next task continue, so one task never
# holds a worker for long while messages keep arriving.
RUN_SECONDS = 20.0


@cache
def configured_sinks() -> tuple[Sink, ...]:
    """One instance per sink per process: sinks keep their connections between batches."""
    return tuple(import_string(settings.IDDS_SINK_CLASSES[name])() for name in settings.IDDS_MESSAGE_SINKS)


def message_backoff(attempts: int) -> float:
    return min(600.0, 2.0**attempts)


def messages_deliver(*, batch_size: int | None = None, run_seconds: float = RUN_SECONDS) -> int:
    """Deliver due outbox messages until none are left or the run's time is up; return how many."""
    holder = worker_name()
    delivered = 0
    started = time.monotonic()
    size = batch_size or settings.IDDS_MESSAGE_BATCH
    while time.monotonic() - started < run_seconds:
        if not AgentLease.acquire(LEASE_NAME, holder, LEASE_SECONDS):
            return delivered
        try:
            while time.monotonic() - started < run_seconds:
                batch = _due_batch(size)
                if not batch:
                    break
                delivered += _deliver_batch(batch)
                AgentLease.acquire(LEASE_NAME, holder, LEASE_SECONDS)
        finally:
            AgentLease.release(LEASE_NAME, holder)
        # A message committed while we held the lease had its wake-up refused by the lease:
        # look once more after releasing, so it does not wait for the next beat tick.
        if not _due_batch(1):
            break
    return delivered


def _due_batch(size: int) -> list[Message]:
    now = timezone.now()
    return list(
        Message.objects.filter(status=MessageStatus.NEW)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")[:size]
    )


def _outgoing(message: Message) -> OutgoingMessage:
    return OutgoingMessage(
        msg_id=message.msg_id,
        msg_type=message.msg_type,
        body=message.body,
        request_id=message.request_id,
        transform_id=message.transform_id,
        workload_id=message.workload_id,
    )


def _send_everywhere(batch: Sequence[Message]) -> tuple[set[str], dict[str, str], set[str]]:
    """Send to every sink; return (confirmed by all, reasons of failures, permanent refusals)."""
    outgoing = [_outgoing(m) for m in batch]
    confirmed = {m.msg_id for m in batch}
    reasons: dict[str, str] = {}
    permanent: set[str] = set()
    for sink in configured_sinks():
        try:
            report = sink.send(outgoing)
        except TransientError as exc:
            report = SendReport(failed={m.msg_id: str(exc) for m in outgoing})
        except Exception as exc:  # a sink bug must not lose messages: treat as not confirmed
            logger.exception("sink %s failed", sink.name)
            report = SendReport(failed={m.msg_id: f"{type(exc).__name__}: {exc}" for m in outgoing})
        confirmed &= report.delivered
        for msg_id in {m.msg_id for m in outgoing} - report.delivered:
            reasons.setdefault(msg_id, f"{sink.name}: {report.failed.get(msg_id, 'not confirmed')}")
        permanent |= report.permanent
    return confirmed, reasons, permanent


def _deliver_batch(batch: list[Message]) -> int:
    confirmed, reasons, permanent = _send_everywhere(batch)
    # A transform whose earlier message failed must not see later ones delivered first.
    blocked_transforms: set[int | None] = set()
    delivered_ids: list[int] = []
    failed: list[Message] = []
    for message in batch:
        if message.transform_id in blocked_transforms and message.transform_id is not None:
            continue
        if message.msg_id in confirmed:
            delivered_ids.append(message.pk)
        else:
            failed.append(message)
            blocked_transforms.add(message.transform_id)
    now = timezone.now()
    sink_names = list(settings.IDDS_MESSAGE_SINKS)
    with transaction.atomic():
        if delivered_ids:
            bulk_transition(
                Message.objects.filter(pk__in=delivered_ids, status=MessageStatus.NEW),
                MessageStatus.DELIVERED,
                delivered_at=now,
                delivered_to=sink_names,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
        for message in failed:
            _record_failure(message, reasons.get(message.msg_id, "not confirmed"), message.msg_id in permanent)
    return len(delivered_ids)


def _record_failure(message: Message, reason: str, permanent: bool) -> None:
    attempts = message.attempts + 1
    now = timezone.now()
    if permanent or attempts >= settings.IDDS_MESSAGE_MAX_ATTEMPTS:
        transition(
            message,
            MessageStatus.FAILED,
            reason=reason,
            actor="conductor",
            fields={"attempts": attempts, "last_error": reason[:2000]},
        )
        logger.error("message %s failed for good after %s attempt(s): %s", message.msg_id, attempts, reason)
        return
    retry_at = now + timedelta(seconds=message_backoff(attempts))
    Message.objects.filter(pk=message.pk).update(
        attempts=attempts, last_error=reason[:2000], next_attempt_at=retry_at, updated_at=now
    )
    if message.transform_id is not None:
        # Later messages of the same transform wait at least as long, keeping their order.
        Message.objects.filter(transform_id=message.transform_id, status=MessageStatus.NEW, pk__gt=message.pk).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=retry_at)
        ).update(next_attempt_at=retry_at)


def messages_requeue(*, queryset) -> int:
    """Operator action: give Failed messages another round of attempts."""
    count = 0
    for message in queryset.filter(status=MessageStatus.FAILED):
        transition(
            message,
            MessageStatus.NEW,
            reason="re-queued by operator",
            actor="operator",
            fields={"attempts": 0, "next_attempt_at": None, "last_error": ""},
        )
        count += 1
    if count:
        from requests_app.tasks import deliver_messages as deliver_messages_task

        deliver_messages_task.delay_on_commit()
    return count
