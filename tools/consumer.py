"""Reference consumer: what a workload system does with iDDS messages.

    python -m tools.consumer --stomp 127.0.0.1:61613 --destination /topic/idds [--durable NAME]
    python -m tools.consumer --redis redis://127.0.0.1:6379/0 --stream idds --group jedi

It subscribes over STOMP or to a Redis stream (consumer group), drops repeats by message id
(delivery is at least once), prints the files released per workload and, with ``--jsonl FILE``,
appends every new message to that file (which also remembers the ids seen across restarts). A
message is acknowledged only after it was recorded, so a crash re-delivers instead of losing it.
It ends after ``--count`` new messages, ``--idle`` quiet seconds or on SIGINT/SIGTERM, printing a
JSON summary as its last line.

Only ``stomp.py`` and ``redis`` are needed, not Django: a workload system can copy this file.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import redis
import stomp

logger = logging.getLogger("idds.consumer")

MSG_ID_HEADER = "idds-msg-id"


@dataclass(frozen=True)
class Delivery:
    """One message as received; ``ack_token`` is what the source needs to acknowledge it."""

    msg_id: str
    msg_type: str
    body: dict[str, Any]
    ack_token: Any = None
    raw: str | None = None  # the body's JSON text as received, written to JSONL without re-encoding


class Source(Protocol):
    """Where deliveries come from: a STOMP subscription or a Redis consumer group."""

    def receive(self, timeout: float) -> list[Delivery]: ...

    def ack(self, deliveries: Sequence[Delivery]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Recorder:
    """Keeps the ids seen (to drop repeats) and what each workload got released.

    With ``jsonl`` every new message is appended as ``{"msg_id", "msg_type", "body"}``; ``flush``
    makes the batch durable before it is acknowledged. The ids already in the file count as seen
    on start. ``keep_names=False`` keeps only file counts (a long-running consumer's memory).
    """

    jsonl: Path | None = None
    keep_names: bool = True
    seen: set[str] = field(default_factory=set)
    files_by_workload: dict[Any, list[str]] = field(default_factory=dict)
    file_counts: Counter = field(default_factory=Counter)
    messages_by_type: Counter = field(default_factory=Counter)
    duplicates: int = 0
    _out: TextIO | None = None

    def __post_init__(self) -> None:
        if self.jsonl is not None:
            if self.jsonl.exists():
                with self.jsonl.open() as existing:
                    for line in existing:
                        if line.strip():
                            entry = json.loads(line)
                            self._count(entry["msg_id"], entry["msg_type"], entry["body"])
            self._out = self.jsonl.open("a")

    def record(self, delivery: Delivery) -> bool:
        """Record ``delivery``; False (and nothing recorded) when its id was seen before."""
        if delivery.msg_id in self.seen:
            self.duplicates += 1
            return False
        if self._out is not None:
            body = delivery.raw if delivery.raw is not None else json.dumps(delivery.body, separators=(",", ":"))
            head = json.dumps({"msg_id": delivery.msg_id, "msg_type": delivery.msg_type}, separators=(",", ":"))
            self._out.write(f'{head[:-1]},"body":{body}}}\n')
        self._count(delivery.msg_id, delivery.msg_type, delivery.body)
        return True

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def _count(self, msg_id: str, msg_type: str, body: dict[str, Any]) -> None:
        self.seen.add(msg_id)
        self.messages_by_type[msg_type] += 1
        files = body.get("files")
        if files:
            workload_id = body.get("workload_id")
            self.file_counts[workload_id] += len(files)
            if self.keep_names:
                released = self.files_by_workload.setdefault(workload_id, [])
                released.extend(f"{item.get('scope')}:{item.get('name')}" for item in files)

    def summary(self) -> dict[str, Any]:
        return {
            "messages": len(self.seen),
            "duplicates_dropped": self.duplicates,
            "messages_by_type": dict(self.messages_by_type),
            "files_by_workload": {str(w): count for w, count in self.file_counts.items()},
            "files": sum(self.file_counts.values()),
        }

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def describe(delivery: Delivery) -> str:
    """One human line per new message: what was released to which workload."""
    body = delivery.body
    what = f"{len(body['files'])} files" if "files" in body else f"{len(body.get('collections') or [])} collections"
    return (
        f"{delivery.msg_type} workload={body.get('workload_id')} request={body.get('request_id')} "
        f"transform={body.get('transform_id')} {what} id={delivery.msg_id}"
    )


# -- STOMP --------------------------------------------------------------------------------------


class StompSource:
    """A STOMP subscription with client-individual acks, reconnecting (with back-off) when dropped.

    ``durable`` names a durable topic subscription, so messages published while the consumer is
    away (or the broker restarts) wait for it: ActiveMQ uses ``client-id`` and
    ``activemq.subscriptionName``, RabbitMQ ``durable``/``auto-delete``; each ignores the other's.
    """

    def __init__(
        self,
        hosts: Sequence[tuple[str, int]],
        destination: str,
        *,
        user: str | None = None,
        password: str | None = None,
        durable: str | None = None,
        selector: str | None = None,
        vhost: str = "/",
    ) -> None:
        self._stomp = stomp
        self.hosts = list(hosts)
        self.destination = destination
        self.user = user
        self.password = password
        self.durable = durable
        self.selector = selector
        self.vhost = vhost  # the ``host`` header; RabbitMQ reads it as its virtual host
        self._inbox: queue.Queue[Delivery] = queue.Queue()
        self._connection: Any = None
        self._lost = threading.Event()
        self._subscribed = threading.Event()
        self._backoff = 0.5
        self._generation = 0
        self._connect()

    def _connect(self) -> None:
        stomp = self._stomp
        inbox, lost, subscribed = self._inbox, self._lost, self._subscribed
        # Ack ids are only valid on the connection that received them; older ones are skipped.
        self._generation += 1
        generation = self._generation

        class Listener(stomp.ConnectionListener):
            def on_message(self, frame: Any) -> None:
                headers = frame.headers
                try:
                    body = json.loads(frame.body)
                    raw = frame.body if isinstance(frame.body, str) else None
                except ValueError:
                    logger.warning("message %s has no JSON body", headers.get("message-id"))
                    body, raw = {"unparsed": str(frame.body)[:1000]}, None
                msg_id = headers.get(MSG_ID_HEADER) or headers.get("msg_id") or headers["message-id"]
                msg_type = headers.get("msg_type") or body.get("msg_type", "")
                ack_id = headers.get("ack") or headers["message-id"]
                inbox.put(Delivery(msg_id, msg_type, body, ack_token=(generation, ack_id), raw=raw))

            def on_error(self, frame: Any) -> None:
                logger.warning("broker error: %s", frame.headers.get("message") or frame.body)

            def on_receipt(self, frame: Any) -> None:
                if frame.headers.get("receipt-id") == "idds-subscribed":
                    subscribed.set()

            def on_disconnected(self) -> None:
                lost.set()

        connection = stomp.Connection12(
            self.hosts,
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_attempts_max=len(self.hosts),
            vhost=self.vhost,
        )
        connection.set_listener("idds-consumer", Listener())
        connect_headers = {"client-id": self.durable} if self.durable else {}
        self._lost.clear()
        connection.connect(self.user, self.password, wait=True, headers=connect_headers)
        subscribe_headers: dict[str, str] = {}
        if self.durable:
            subscribe_headers = {
                "activemq.subscriptionName": self.durable,
                "durable": "true",
                "auto-delete": "false",
            }
        if self.selector:
            subscribe_headers["selector"] = self.selector
        # With a receipt, so that "subscribed" means the broker routes to us from now on.
        subscribed.clear()
        connection.subscribe(
            self.destination,
            id=self.durable or "idds-consumer",
            ack="client-individual",
            headers=subscribe_headers | {"receipt": "idds-subscribed"},
        )
        if not subscribed.wait(timeout=30):
            raise ConnectionError(f"no receipt for SUBSCRIBE {self.destination}")
        self._connection = connection
        self._backoff = 0.5
        logger.info("subscribed to %s on %s", self.destination, connection.transport.current_host_and_port)

    def _reconnect(self) -> None:
        try:
            self._connection.disconnect()
        except Exception:  # noqa: BLE001 - the old connection is gone either way
            pass
        try:
            self._connect()
        except Exception as exc:  # noqa: BLE001 - stomp.py raises several kinds; keep trying
            logger.warning("reconnect failed (%s); retrying in %.1f s", str(exc) or type(exc).__name__, self._backoff)
            self._lost.set()  # still not connected: try again on the next receive
            time.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 30.0)

    def receive(self, timeout: float) -> list[Delivery]:
        if self._lost.is_set():
            self._reconnect()
        try:
            first = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return []
        deliveries = [first]
        while True:
            try:
                deliveries.append(self._inbox.get_nowait())
            except queue.Empty:
                return deliveries

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            generation, ack_id = delivery.ack_token
            if generation != self._generation:
                continue  # received before a reconnect: the broker redelivers it, we drop the repeat
            try:
                self._connection.ack(ack_id)
            except Exception as exc:  # noqa: BLE001 - unacked means redelivered: a repeat we drop
                logger.info("ack of %s failed (%s); it will come again", delivery.msg_id, exc)

    def close(self) -> None:
        try:
            self._connection.disconnect()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


# -- Redis Streams ------------------------------------------------------------------------------


class RedisStreamSource:
    """A consumer in a Redis consumer group; on start it first re-reads its own pending entries."""

    def __init__(self, url: str, stream: str, group: str, consumer: str, *, from_beginning: bool = False) -> None:
        self._redis = redis
        self.client = redis.Redis.from_url(url, socket_timeout=60)
        self.stream = stream
        self.group = group
        self.consumer = consumer
        try:
            self.client.xgroup_create(stream, group, id="0" if from_beginning else "$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._next_id = "0"  # our pending entries (unacked before a crash) first, then new ones

    def receive(self, timeout: float) -> list[Delivery]:
        try:
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: self._next_id}, count=500, block=int(timeout * 1000)
            )
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            logger.warning("Redis unreachable (%s); retrying", exc)
            time.sleep(min(timeout, 1.0))
            return []
        entries = reply[0][1] if reply else []
        if self._next_id != ">":
            # Walking our pending list: continue after its last entry; when it is empty, go live.
            self._next_id = entries[-1][0] if entries else ">"
        deliveries, trimmed = [], []
        for entry_id, fields in entries:
            if not fields:  # trimmed from the stream while pending: nothing left to read
                trimmed.append(entry_id)
                continue
            raw = fields[b"body"].decode()
            deliveries.append(
                Delivery(
                    fields[b"msg_id"].decode(),
                    fields[b"msg_type"].decode(),
                    json.loads(raw),
                    ack_token=entry_id,
                    raw=raw,
                )
            )
        self._ack_ids(trimmed)
        return deliveries

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._ack_ids([d.ack_token for d in deliveries])

    def _ack_ids(self, entry_ids: list[Any]) -> None:
        if not entry_ids:
            return
        try:
            self.client.xack(self.stream, self.group, *entry_ids)
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            # Unacked entries stay pending in the group: read our pending list again so they come
            # back (the recorder drops the repeats) instead of waiting for the next restart.
            logger.warning("ack failed, Redis unreachable (%s); re-reading pending entries", exc)
            self._next_id = "0"

    def close(self) -> None:
        self.client.close()


# -- loop and command line ----------------------------------------------------------------------


def consume(
    source: Source,
    recorder: Recorder,
    *,
    count: int | None = None,
    idle: float | None = None,
    stop: threading.Event | None = None,
    on_new: Callable[[Delivery], None] | None = None,
) -> dict[str, Any]:
    """Record deliveries until ``count`` new ones, ``idle`` quiet seconds or ``stop``; return the summary."""
    stop = stop or threading.Event()
    new = 0
    last_new = time.monotonic()
    while not stop.is_set():
        if count is not None and new >= count:
            break
        if idle is not None and time.monotonic() - last_new >= idle:
            break
        deliveries = source.receive(timeout=0.5)
        for delivery in deliveries:
            if recorder.record(delivery):
                new += 1
                last_new = time.monotonic()
                if on_new is not None:
                    on_new(delivery)
        recorder.flush()
        source.ack(deliveries)  # after recording: a crash in between means a repeat, not a loss
    return recorder.summary()


def parse_hosts(text: str) -> list[tuple[str, int]]:
    hosts = []
    for entry in text.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"--stomp: {entry!r} is not host:port")
        hosts.append((host, int(port)))
    return hosts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.consumer", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stomp", type=parse_hosts, metavar="HOST:PORT[,HOST:PORT]", help="STOMP broker(s)")
    where.add_argument("--redis", metavar="URL", help="Redis URL holding the stream")
    parser.add_argument("--destination", default="/topic/idds", help="STOMP destination (default /topic/idds)")
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--vhost", default="/", help="STOMP host header (RabbitMQ virtual host)")
    parser.add_argument("--durable", metavar="NAME", help="durable STOMP subscription name")
    parser.add_argument("--selector", help="STOMP selector, e.g. \"workload_id = '123'\" (ActiveMQ)")
    parser.add_argument("--stream", default="idds", help="Redis stream (default idds)")
    parser.add_argument("--group", default="idds-consumer", help="Redis consumer group")
    parser.add_argument("--name", default="consumer-1", help="consumer name inside the group")
    parser.add_argument("--from-beginning", action="store_true", help="a new group starts at the stream's start")
    parser.add_argument("--jsonl", type=Path, help="append every new message to this file (and dedupe across runs)")
    parser.add_argument("--count", type=int, help="stop after this many new messages")
    parser.add_argument("--idle", type=float, help="stop after this many seconds without a new message")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


def open_source(args: argparse.Namespace) -> Source:
    """The STOMP subscription or Redis consumer group the command line asks for."""
    if args.stomp:
        return StompSource(
            args.stomp,
            args.destination,
            user=args.user,
            password=args.password,
            durable=args.durable,
            selector=args.selector,
            vhost=args.vhost,
        )
    return RedisStreamSource(args.redis, args.stream, args.group, args.name, from_beginning=args.from_beginning)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        source = open_source(args)
    except Exception as exc:  # noqa: BLE001 - whatever stops us from subscribing, say where and why
        where = args.redis or ",".join(f"{host}:{port}" for host, port in args.stomp)
        print(f"cannot subscribe at {where}: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    recorder = Recorder(jsonl=args.jsonl, keep_names=False)
    on_new = None if args.quiet else (lambda delivery: print(describe(delivery), flush=True))
    try:
        summary = consume(source, recorder, count=args.count, idle=args.idle, stop=stop, on_new=on_new)
    finally:
        source.close()
        recorder.close()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
