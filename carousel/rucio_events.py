"""Rucio's transfer messages as the fast path of staging through Rucio.

Rucio's conveyor writes a ``transfer-done`` (or ``transfer-failed``) message for every transfer it
ends, and its Hermes daemon sends them to a STOMP broker as JSON
(``{"event_type": ..., "payload": {"scope", "name", "dst-rse", "src-rse", ...}, "created_at": ...}``).
``EventRecorder`` (run by ``manage.py carousel_rucio_events``) subscribes to them and records each
as a ``RucioTransferEvent`` row, acknowledging a message only after its row is committed. A poll
(``carousel.worktype``) then takes the files that landed from these rows (one indexed query) instead
of listing every lock of its rule, and lists the locks only when the rule's counters disagree with
what the events said (a message lost or late, a stuck lock): polling stays the safety net.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import stomp
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from carousel.backends.base import StagingBackend
from carousel.models import RucioTransferEvent

logger = logging.getLogger(__name__)

EVENT_STATES = {"transfer-done": "OK", "transfer-failed": "FAILED"}
# Rows written per transaction, and the longest a received message waits for its batch.
BATCH = 1000
BATCH_SECONDS = 0.2
RECONNECT_SECONDS = (1, 2, 5, 10, 30)
PRUNE_EVERY_SECONDS = 600


def parse_message(body: str | bytes) -> RucioTransferEvent | None:
    """The event a Hermes message reports, or None for other messages (rules, deletions, ...)."""
    try:
        message = json.loads(body)
        state = EVENT_STATES.get(str(message.get("event_type", "")).lower())
        payload = message.get("payload") or {}
        if state is None or not payload.get("name") or not payload.get("dst-rse"):
            return None
    except (ValueError, AttributeError):
        logger.warning("ignored a Rucio message that is not Hermes JSON: %.200r", body)
        return None
    return RucioTransferEvent(
        scope=str(payload.get("scope") or ""),
        name=str(payload["name"]),
        rse=str(payload["dst-rse"]),
        source=str(payload.get("src-rse") or ""),
        state=state,
        created_at=_rucio_time(message.get("created_at")),
    )


def _rucio_time(value: Any) -> datetime | None:
    """Hermes sends ``str(datetime)`` in UTC without a zone."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class _Listener(stomp.ConnectionListener):
    def __init__(self, inbox: queue.Queue, disconnected: threading.Event) -> None:
        self.inbox = inbox
        self.disconnected = disconnected

    def on_message(self, frame: Any) -> None:
        self.inbox.put(frame)

    def on_disconnected(self) -> None:
        self.disconnected.set()


class EventRecorder:
    """Subscribes to Hermes' destination and records transfer events until ``stop`` is set."""

    def __init__(
        self,
        *,
        broker: str,
        destination: str,
        username: str = "",
        password: str = "",
        retention_seconds: float = 86400.0,
        subscription: str = "idds-carousel",
    ) -> None:
        host, port = broker.rsplit(":", 1)
        self.host_and_port = (host, int(port))
        self.destination = destination
        self.username = username
        self.password = password
        self.retention = timedelta(seconds=retention_seconds)
        self.subscription = subscription
        self.recorded = 0
        self._inbox: queue.Queue = queue.Queue()
        self._disconnected = threading.Event()
        self._connection: stomp.Connection12 | None = None
        self._pruned_at = 0.0

    def _connect(self) -> stomp.Connection12:
        connection = stomp.Connection12([self.host_and_port], heartbeats=(10_000, 10_000))
        connection.set_listener("recorder", _Listener(self._inbox, self._disconnected))
        connection.connect(self.username or None, self.password or None, wait=True)
        # Individual acknowledgements: a message not yet committed here is delivered again.
        connection.subscribe(self.destination, id=self.subscription, ack="client-individual")
        self._disconnected.clear()
        logger.info("recording Rucio transfer events from %s:%s%s", *self.host_and_port, self.destination)
        return connection

    def run(self, stop: threading.Event) -> None:
        attempt = 0
        while not stop.is_set():
            if self._connection is None or self._disconnected.is_set():
                try:
                    self._connection = self._connect()
                    attempt = 0
                except (stomp.exception.StompException, OSError) as error:
                    delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                    logger.warning("cannot reach the broker for Rucio events (%s); retrying in %ss", error, delay)
                    attempt += 1
                    stop.wait(delay)
                    continue
            try:
                self.record_batch(timeout=0.5)
                self._prune()
            except Exception:
                # The database or the broker failed mid-batch: drop the connection, so that the broker
                # delivers again what was not acknowledged, and start over (a repeat is harmless).
                logger.exception("recording Rucio transfer events failed; reconnecting")
                self._drop_connection()
                self._inbox = queue.Queue()
                stop.wait(RECONNECT_SECONDS[0])
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                if self._connection.is_connected():
                    self._connection.disconnect()
            except (stomp.exception.StompException, OSError):
                pass
        self._connection = None

    def record_batch(self, *, timeout: float) -> int:
        """Record the messages received so far (at most ``BATCH``), then acknowledge them."""
        try:
            frames = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            return 0
        deadline = time.monotonic() + BATCH_SECONDS
        while len(frames) < BATCH and time.monotonic() < deadline:
            try:
                frames.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        events = [event for event in (parse_message(frame.body) for frame in frames) if event is not None]
        with transaction.atomic():
            RucioTransferEvent.objects.bulk_create(events)
        for frame in frames:
            self._connection.ack(frame.headers["ack"])
        self.recorded += len(events)
        return len(events)

    def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        deleted, _ = RucioTransferEvent.objects.filter(received_at__lt=timezone.now() - self.retention).delete()
        if deleted:
            logger.info("deleted %d Rucio transfer events older than %s", deleted, self.retention)


def latest_event_id() -> int:
    """The id of the latest recorded event (0 when none): a new rule's events come after it."""
    return RucioTransferEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def landed_after(*, names_query: Any, destination: str, after: int) -> tuple[list[tuple[datetime | None, str]], int]:
    """(Rucio time, name) of the files in ``names_query`` (a query of content names) that landed on
    ``destination`` according to the events recorded after id ``after``, in arrival order, and the
    new cursor (the last event id read)."""
    # The cursor moves past every event recorded so far, not only this processing's: the next poll
    # reads only newer rows. Taken first, so an event recorded meanwhile is left for the next poll.
    # (One recorder commits its batches in id order; a skipped event is caught by the safety net.)
    latest = latest_event_id()
    if latest <= after:
        return [], after
    rows = (
        RucioTransferEvent.objects.filter(
            id__gt=after, id__lte=latest, rse=destination, state="OK", name__in=names_query
        )
        .order_by("id")
        .values_list("created_at", "name")
    )
    return list(rows), latest


def needs_listing(backend: StagingBackend, index: int, group: dict[str, Any], *, known_ok: int) -> bool:
    """Whether a group's locks must be listed although transfer events arrive: re-stage groups
    (one rule per file, small) always; the dataset rule when its counters (one cheap read) show a
    stuck lock not seen yet, OK locks when it was submitted (files there before it), or more OK
    locks ``grace`` seconds ago than files known landed now (an event was lost or is late)."""
    if index > 0 or len(group["rule_ids"]) != 1:
        return True
    info = backend.get_rule(group["rule_ids"][0])
    now = backend.now()
    grace = timedelta(seconds=settings.IDDS_RUCIO_EVENTS_GRACE_SECONDS)
    checkpoint = group.get("ok_checkpoint")
    checked_at = datetime.fromisoformat(checkpoint["at"]) if checkpoint else None
    due = checked_at is None or now - checked_at >= grace
    if checked_at is None:
        # The first look: locks OK when the rule was submitted (files on the destination before it,
        # an adopted rule) came with no message.
        behind = group.get("ok_at_submit", 0) > known_ok
    else:
        behind = due and known_ok < checkpoint["ok"]
    new_stuck = info.locks_stuck_cnt > group.get("stuck_seen", 0)
    if due:
        group["ok_checkpoint"] = {"at": now.isoformat(), "ok": info.locks_ok_cnt}
    group["stuck_seen"] = info.locks_stuck_cnt
    return behind or new_stuck
