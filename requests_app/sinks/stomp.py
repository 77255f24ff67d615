"""The STOMP sink: publishes outbox messages to a broker (ActiveMQ, RabbitMQ's STOMP plugin).

A message counts as delivered only when the broker's RECEIPT for its SEND frame arrived: every
frame asks for a receipt named after the message id, a whole window of frames is written before
waiting, and the receipts are then collected together (one round trip per window, not per
message). A broker processes the frames of one connection in order, so when it refuses a frame
and closes the connection, the receipts before it have all arrived and the first unconfirmed
message is the one it refused.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import stomp
from django.conf import settings
from stomp.exception import StompException

from requests_app.errors import TransientError

from .base import OutgoingMessage, SendReport, Sink
from .encoding import encode_body

logger = logging.getLogger("idds.messages.stomp")

# Header consumers use to drop repeats; ``msg_id`` carries the same value for consumers that
# expect iDDS-style snake-case names. (Brokers overwrite STOMP's own ``message-id``.)
MSG_ID_HEADER = "idds-msg-id"


def parse_hosts(hosts: Sequence[str] | str) -> list[tuple[str, int]]:
    """``["a:61613", "b:61613"]`` (or ``"a:61613,b:61613"``) -> ``[("a", 61613), ("b", 61613)]``."""
    if isinstance(hosts, str):
        hosts = [part for part in hosts.split(",") if part.strip()]
    parsed = []
    for entry in hosts:
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"IDDS_STOMP_HOSTS: {entry!r} is not host:port")
        parsed.append((host, int(port)))
    if not parsed:
        raise ValueError("IDDS_STOMP_HOSTS: no broker given")
    return parsed


def message_headers(message: OutgoingMessage) -> dict[str, str]:
    """The headers every published message carries (consumers may select on the ids)."""
    headers = {
        "persistent": "true",
        "content-type": "application/json",
        MSG_ID_HEADER: message.msg_id,
        "msg_id": message.msg_id,
        "request_id": str(message.request_id),
    }
    # The original's headers (docs/messages.md): a broker-side selector may match on any of them.
    if settings.IDDS_STOMP_MSG_TYPE_HEADER:
        headers["msg_type"] = message.msg_type
    if settings.IDDS_STOMP_TTL_MS:
        headers["ttl"] = str(settings.IDDS_STOMP_TTL_MS)
    if settings.IDDS_STOMP_VO:
        headers["vo"] = settings.IDDS_STOMP_VO
    if settings.IDDS_STOMP_FROM_IDDS:
        headers["from_idds"] = "true"
    if message.transform_id is not None:
        headers["transform_id"] = str(message.transform_id)
    if message.workload_id is not None:
        headers["workload_id"] = str(message.workload_id)
    return headers


@dataclass
class _Window:
    """What the broker answered for the frames of one window."""

    receipts: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)  # receipt id -> broker's reason
    fatal_error: str | None = None  # an ERROR frame naming no receipt: the broker drops the connection
    disconnected: bool = False


class _ReceiptListener(stomp.ConnectionListener):
    """Collects receipts and errors from stomp.py's receiver thread for the sending thread."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.window = _Window()
        self.connected = False

    def reset(self) -> None:
        with self.condition:
            self.window = _Window(disconnected=self.window.disconnected)

    def on_connected(self, frame: stomp.utils.Frame) -> None:
        with self.condition:
            self.connected = True
            self.condition.notify_all()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self.condition:
            self.window.receipts.add(frame.headers.get("receipt-id", ""))
            self.condition.notify_all()

    def on_error(self, frame: stomp.utils.Frame) -> None:
        reason = frame.headers.get("message") or str(frame.body or "").split("\n", 1)[0] or "ERROR frame"
        receipt = frame.headers.get("receipt-id")
        with self.condition:
            if receipt:
                self.window.refused[receipt] = reason
            else:
                self.window.fatal_error = reason
            self.condition.notify_all()

    def on_disconnected(self) -> None:
        with self.condition:
            self.connected = False
            self.window.disconnected = True
            self.condition.notify_all()


class StompSink(Sink):
    """Publishes to ``IDDS_STOMP_DESTINATION`` on the first reachable of ``IDDS_STOMP_HOSTS``.

    Keeps one connection per process. When no broker answers, ``send`` raises ``TransientError``
    and further connection attempts back off exponentially (``backoff_initial`` doubling up to
    ``backoff_max`` seconds, with jitter), so a conductor calling again soon costs nothing.
    """

    name = "stomp"

    def __init__(
        self,
        *,
        hosts: Sequence[str] | str | None = None,
        destination: str | None = None,
        user: str | None = None,
        password: str | None = None,
        window: int = 1000,
        receipt_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        vhost: str = "/",
    ) -> None:
        if hosts is None or destination is None or user is None or password is None:
            hosts = settings.IDDS_STOMP_HOSTS if hosts is None else hosts
            destination = settings.IDDS_STOMP_DESTINATION if destination is None else destination
            user = settings.IDDS_STOMP_USER if user is None else user
            password = settings.IDDS_STOMP_PASSWORD if password is None else password
        self.hosts = parse_hosts(hosts)
        self.destination = destination
        self.user = user or None
        self.password = password or None
        self.window = window
        self.receipt_timeout = receipt_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # STOMP's ``host`` header: RabbitMQ reads it as the virtual host (stomp.py would send the
        # broker's host name, which RabbitMQ refuses); ActiveMQ ignores it.
        self.vhost = vhost
        self._connection: stomp.Connection12 | None = None
        self._listener = _ReceiptListener()
        self._lock = threading.Lock()
        self._connect_failures = 0
        self._next_connect_at = 0.0

    # -- public interface -----------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> SendReport:
        """Publish ``messages`` in order; report those the broker confirmed or refused.

        ``failed`` names only messages the broker itself refused, with its reason. Messages in
        neither set were not processed (the connection went away first): the sink blames none
        of them and the conductor sends them again. Raises ``TransientError`` when no broker is
        reachable or the connection broke before anything was confirmed or refused.
        """
        report = SendReport()
        frames: list[tuple[OutgoingMessage, bytes]] = []
        for message in messages:
            try:
                frames.append((message, encode_body(message.body)))
            except (TypeError, ValueError) as exc:
                report.failed[message.msg_id] = f"body is not JSON: {exc}"
                report.permanent.add(message.msg_id)
        problem = None
        with self._lock:
            for start in range(0, len(frames), self.window):
                try:
                    problem = self._send_window(frames[start : start + self.window], report)
                except TransientError as exc:  # no broker reachable for this window
                    problem = str(exc)
                if problem is not None:
                    break
        if problem is not None and not report.delivered and not report.failed:
            raise TransientError(problem)
        return report

    def close(self) -> None:
        with self._lock:
            self._drop_connection(graceful=True)

    # -- sending --------------------------------------------------------------------------------

    def _send_window(self, frames: list[tuple[OutgoingMessage, bytes]], report: SendReport) -> str | None:
        """Send one window and collect its receipts into ``report``.

        Returns None when the connection is still good, else why it was dropped.
        """
        connection = self._ensure_connected()
        listener = self._listener
        listener.reset()
        sent: list[str] = []
        try:
            for message, body in frames:
                headers = message_headers(message)
                headers["receipt"] = message.msg_id
                # Counted before writing: if the broker closes the socket over this very frame
                # (too large, say), it is the one to blame.
                sent.append(message.msg_id)
                connection.send(self.destination, body, headers=headers)
        except (StompException, OSError) as exc:
            # The broker went away while we were writing; what it confirmed still counts.
            logger.warning("STOMP send interrupted at frame %d: %s", len(sent), exc)
        expected = set(sent)
        with listener.condition:
            listener.condition.wait_for(
                lambda: (
                    expected <= listener.window.receipts | listener.window.refused.keys()
                    or listener.window.fatal_error is not None
                    or listener.window.disconnected
                ),
                timeout=self.receipt_timeout,
            )
            # Frames arrive in order on one receiver thread, so by the time a fatal ERROR is seen
            # every receipt the broker wrote before it has been recorded.
            window = listener.window
            confirmed = expected & window.receipts
            refused = {msg_id: reason for msg_id, reason in window.refused.items() if msg_id in expected}
            fatal_error = window.fatal_error
            disconnected = window.disconnected
        report.delivered |= confirmed
        for msg_id, reason in refused.items():
            report.failed[msg_id] = f"broker refused: {reason}"
        unconfirmed = [msg_id for msg_id in sent if msg_id not in confirmed and msg_id not in refused]
        problem = None
        if fatal_error is not None:
            problem = f"broker error: {fatal_error}"
            if unconfirmed:
                # In-order processing: the first frame without a receipt is the one it refused.
                report.failed[unconfirmed[0]] = f"broker refused: {fatal_error}"
        elif disconnected or len(sent) < len(frames):
            problem = "connection to the STOMP broker lost"
        elif unconfirmed:
            # Receipts overdue on a live connection: it cannot be trusted any more.
            problem = f"no STOMP receipt within {self.receipt_timeout:.0f} s for {len(unconfirmed)} messages"
        if problem is not None:
            logger.warning("%s; %d of %d messages confirmed", problem, len(confirmed), len(frames))
            self._drop_connection(graceful=False)
        return problem

    # -- connection management ------------------------------------------------------------------

    def _ensure_connected(self) -> stomp.Connection12:
        if self._connection is not None and self._listener.connected:
            return self._connection
        self._drop_connection(graceful=False)
        now = time.monotonic()
        if now < self._next_connect_at:
            raise TransientError(f"STOMP brokers unreachable; next attempt in {self._next_connect_at - now:.1f} s")
        try:
            self._connection = self._connect()
        except (StompException, OSError, TransientError) as exc:
            self._connect_failures += 1
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._connect_failures - 1))
            self._next_connect_at = time.monotonic() + delay * (1 + random.random() / 4)
            hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
            raise TransientError(f"no STOMP broker reachable at {hosts}: {str(exc) or type(exc).__name__}") from exc
        self._connect_failures = 0
        self._next_connect_at = 0.0
        return self._connection

    def _connect(self) -> stomp.Connection12:
        """Connect to the first broker that answers, in the configured order (fail-over)."""
        connection = stomp.Connection12(
            self.hosts,
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_sleep_initial=0.05,
            reconnect_attempts_max=len(self.hosts),  # one pass over the list; our own back-off does the rest
            timeout=self.connect_timeout,
            vhost=self.vhost,
        )
        self._listener = _ReceiptListener()
        connection.set_listener("idds-receipts", self._listener)
        connection.connect(self.user, self.password, wait=False)
        with self._listener.condition:
            self._listener.condition.wait_for(
                lambda: (
                    self._listener.connected
                    or self._listener.window.fatal_error is not None
                    or self._listener.window.disconnected
                ),
                timeout=self.connect_timeout,
            )
            connected, error = self._listener.connected, self._listener.window.fatal_error
        if not connected:
            self._connection = connection
            self._drop_connection(graceful=False)
            raise TransientError(error or "STOMP CONNECT not answered")
        host, port = connection.transport.current_host_and_port or ("?", 0)
        logger.info("connected to STOMP broker %s:%s", host, port)
        return connection

    def _drop_connection(self, *, graceful: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if graceful and connection.is_connected():
                connection.disconnect(receipt=None)
            connection.transport.disconnect_socket()
        except (StompException, OSError) as exc:
            logger.debug("ignoring error while closing STOMP connection: %s", exc)
