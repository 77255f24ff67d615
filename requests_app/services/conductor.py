"""Conductor: deliver outbox messages to every configured sink, at least once, in order.

One worker delivers at a time (a named lease that expires by itself), in batches in id order,
so messages of one transform leave in the order they were written. A message is Delivered only
when every sink confirmed it. A failed message backs off exponentially, and so do the later
messages of its transform, which keeps their order; after ``IDDS_MESSAGE_MAX_ATTEMPTS`` (or a
refusal the sink calls permanent) it is Failed with the reason and can be re-queued. A sink that
is unreachable is an outage, not a refusal: every due message waits, no attempt is counted, so
an outage of any length delays delivery and loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.module_loading import import_string

from requests_app import handoffs
from requests_app.errors import TransientError
from requests_app.models import AgentLease, Message
from requests_app.models.leases import CONDUCTOR_LEASE
from requests_app.models.statuses import MessageStatus
from requests_app.sinks.base import OutgoingMessage, SendReport, Sink

from .claims import worker_name
from .transitions import bulk_transition, transition

logger = logging.getLogger(__name__)
LEASE_NAME = CONDUCTOR_LEASE
LEASE_SECONDS = 60
# A delivery run stops after this long and lets the next task continue, so one task never
# holds a worker for long while messages keep arriving.
RUN_SECONDS = 20.0
# Longest pause between delivery attempts while a sink is down.
OUTAGE_RETRY_MAX = 30.0


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
                count, stop = _deliver_batch(batch)
                delivered += count
                if stop:
                    return delivered
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
    due_ids = list(
        Message.objects.filter(status=MessageStatus.NEW)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
        .values_list("pk", flat=True)[:size]
    )
    # Bodies travel as the JSON text PostgreSQL already holds: decoding them into Python objects
    # only for the sinks to encode them again was half of the conductor's CPU (sinks accept text).
    # Ids first, then the bodies of just those rows, so the cast runs on ``size`` rows only.
    return list(
        Message.objects.filter(pk__in=due_ids)
        .defer("body")
        .annotate(body_text=Cast("body", TextField()))
        .order_by("id")
    )


def _outgoing(message: Message) -> OutgoingMessage:
    return OutgoingMessage(
        msg_id=message.msg_id,
        msg_type=message.msg_type,
        body=getattr(message, "body_text", None) or message.body,
        request_id=message.request_id,
        transform_id=message.transform_id,
        workload_id=message.workload_id,
    )


@dataclass
class BatchOutcome:
    """What the sinks made of a batch."""

    confirmed: set[str]  # msg_ids every sink confirmed
    refused: dict[str, str] = field(default_factory=dict)  # msg_id -> why a sink refused it
    permanent: set[str] = field(default_factory=set)  # refused for good (poison)
    outage: str = ""  # a sink was unreachable: nothing it did not confirm counts as an attempt


def _send_everywhere(batch: Sequence[Message]) -> BatchOutcome:
    outgoing = [_outgoing(m) for m in batch]
    outcome = BatchOutcome(confirmed={m.msg_id for m in batch})
    for sink in configured_sinks():
        try:
            report = sink.send(outgoing)
        except TransientError as exc:
            outcome.outage = f"{sink.name}: {exc}"
            report = SendReport()
        except Exception as exc:  # a sink bug must not lose messages: nothing is confirmed
            logger.exception("sink %s failed", sink.name)
            outcome.outage = f"{sink.name}: {type(exc).__name__}: {exc}"
            report = SendReport()
        outcome.confirmed &= report.delivered
        for msg_id, why in report.failed.items():
            outcome.refused.setdefault(msg_id, f"{sink.name}: {why}")
        outcome.permanent |= report.permanent
    return outcome


def _deliver_batch(batch: list[Message]) -> tuple[int, bool]:
    """Send one batch and record the outcome; returns (delivered, whether to stop for now)."""
    outcome = _send_everywhere(batch)
    # A transform whose earlier message was not confirmed must not see later ones delivered
    # first: those stay New (a sink may have taken them; consumers drop the repeat).
    blocked: set[int] = set()
    delivered_ids: list[int] = []
    refused: list[Message] = []
    unconfirmed = False
    for message in batch:
        if message.transform_id is not None and message.transform_id in blocked:
            continue
        if message.msg_id in outcome.confirmed:
            delivered_ids.append(message.pk)
            continue
        if message.transform_id is not None:
            blocked.add(message.transform_id)
        if message.msg_id in outcome.refused:
            refused.append(message)
        else:
            unconfirmed = True
    now = timezone.now()
    with transaction.atomic():
        if delivered_ids:
            bulk_transition(
                Message.objects.filter(pk__in=delivered_ids, status=MessageStatus.NEW),
                MessageStatus.DELIVERED,
                delivered_at=now,
                delivered_to=list(settings.IDDS_MESSAGE_SINKS),
                attempts=F("attempts") + 1,
                updated_at=now,
            )
        for message in refused:
            _record_refusal(message, outcome.refused[message.msg_id], message.msg_id in outcome.permanent)
        if unconfirmed or outcome.outage:
            _defer_everything(batch, outcome.outage or "a sink did not confirm in time")
    return len(delivered_ids), bool(unconfirmed or outcome.outage)


def _defer_everything(batch: list[Message], reason: str) -> None:
    """A sink is down: hold every due message back a little, all by the same amount so their
    order is kept, without counting an attempt (an outage never turns a message Failed)."""
    oldest = min(m.created_at for m in batch)
    waited = (timezone.now() - oldest).total_seconds()
    # Retry soon after a blip, at most every OUTAGE_RETRY_MAX seconds during a long outage.
    retry_at = timezone.now() + timedelta(seconds=min(OUTAGE_RETRY_MAX, max(1.0, waited / 10)))
    logger.warning("message delivery held back until %s: %s", retry_at.isoformat(), reason)
    Message.objects.filter(status=MessageStatus.NEW).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=retry_at)
    ).update(next_attempt_at=retry_at, last_error=reason[:2000])


def _record_refusal(message: Message, reason: str, permanent: bool) -> None:
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
        handoffs.messages_written()
    return count
