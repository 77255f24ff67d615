"""Real brokers for the messaging tests: a private ActiveMQ and a private Redis, both restartable.

The tests stop and restart their brokers on purpose, so they never use the shared ones: the
ActiveMQ fixture runs its own broker (installing the Debian package if it is missing) and the
Redis fixture its own ``redis-server`` with an append-only file, on free ports (or
``IDDS_TEST_ACTIVEMQ_PORT`` / ``IDDS_TEST_REDIS_PORT``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from requests_app.errors import TransientError
from requests_app.sinks.base import OutgoingMessage, Sink
from tests.conftest import wait_for
from tools.brokers import ActiveMQBroker
from tools.consumer import Recorder, RedisStreamSource, Source, StompSource, consume
from tools.servers import RedisServer, free_port


@pytest.fixture(scope="session")
def activemq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActiveMQBroker]:
    """A private ActiveMQ 5.17 with one STOMP connector (frames capped at 4 MiB)."""
    port = int(os.environ.get("IDDS_TEST_ACTIVEMQ_PORT") or free_port())
    broker = ActiveMQBroker(port, tmp_path_factory.mktemp("activemq"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def running_activemq(activemq: ActiveMQBroker) -> ActiveMQBroker:
    """The session broker, started again if a previous test left it stopped."""
    activemq.start()
    return activemq


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), int(os.environ.get("IDDS_TEST_REDIS_PORT") or free_port()))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def running_redis(redis_server: RedisServer) -> RedisServer:
    redis_server.start()
    return redis_server


@pytest.fixture
def destination() -> str:
    """A topic of its own per test, so no test sees another's messages."""
    return f"/topic/idds.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stream() -> str:
    return f"idds-test-{uuid.uuid4().hex[:12]}"


def file_message(index: int, *, files: int = 3, workload_id: int = 777, pad: int = 0) -> OutgoingMessage:
    """A file_stagein message shaped like the conductor's (docs/idds-reference.md §2)."""
    body: dict[str, Any] = {
        "msg_type": "file_stagein",
        "workload_id": workload_id,
        "request_id": 1,
        "transform_id": 2,
        "relation_type": "output",
        "files": [
            {"scope": "data16_13TeV", "name": f"file.{index:05d}.{n:04d}", "path": None, "status": "Available"}
            for n in range(files)
        ],
    }
    if pad:
        body["padding"] = "x" * pad
    return OutgoingMessage(
        msg_id=f"{uuid.uuid4().hex[:8]}-{index:05d}",
        msg_type="file_stagein",
        body=body,
        request_id=1,
        transform_id=2,
        workload_id=workload_id,
    )


def deliver_until_confirmed(sink: Sink, messages: list[OutgoingMessage], *, timeout: float = 120.0) -> int:
    """Send until the sink confirmed every message, re-sending the unconfirmed; return the rounds.

    A stand-in for the conductor's retry loop: at least once, in order.
    """
    pending = list(messages)
    rounds = 0

    def progress() -> bool:
        nonlocal pending, rounds
        rounds += 1
        try:
            report = sink.send(pending)
        except TransientError:
            return False
        pending = [m for m in pending if m.msg_id not in report.delivered]
        return not pending

    wait_for(progress, timeout=timeout, interval=0.2, what="every message confirmed")
    return rounds


def send_across_a_restart(sink: Sink, messages: list[OutgoingMessage], server, consumer) -> None:
    """Send ``messages`` in rounds of 50 with retries while ``server`` is stopped after the fourth
    round and started again; then check every message arrived exactly once after dedup."""
    halfway, server_down = threading.Event(), threading.Event()
    rounds: list[int] = []

    def send_all() -> None:
        for index, start in enumerate(range(0, len(messages), 50)):
            if index == 4:
                halfway.set()
                server_down.wait(60)
            rounds.append(deliver_until_confirmed(sink, messages[start : start + 50]))

    sender = threading.Thread(target=send_all)
    sender.start()
    halfway.wait(60)
    server.stop()
    server_down.set()
    time.sleep(1.5)  # let the sender run into the closed port a few times
    server.start()
    sender.join(timeout=180)

    # the sender had to retry, and still every message arrives exactly once after dedup
    assert not sender.is_alive()
    assert rounds[4] > 1
    consumer.wait_for_messages(len(messages), timeout=120)
    summary = consumer.stop()
    recorded = consumer.recorded_ids()
    assert sorted(recorded) == sorted(m.msg_id for m in messages)
    assert len(recorded) == len(set(recorded)) == len(messages)
    assert summary["files"] == sum(len(m.body["files"]) for m in messages)
    sink.close()


@pytest.fixture
def make_messages() -> Callable[..., list[OutgoingMessage]]:
    def make(count: int, **kwargs: Any) -> list[OutgoingMessage]:
        return [file_message(i, **kwargs) for i in range(count)]

    return make


class RunningConsumer:
    """The reference consumer's loop in a thread, recording into ``jsonl``."""

    def __init__(self, source: Source, jsonl: Path) -> None:
        self.source = source
        self.jsonl = jsonl
        self.recorder = Recorder(jsonl=jsonl)
        self._stop = threading.Event()
        self.summary: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, name="idds-test-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.summary = consume(self.source, self.recorder, stop=self._stop)

    def wait_for_messages(self, count: int, *, timeout: float = 60.0) -> None:
        wait_for(lambda: len(self.recorder.seen) >= count, timeout=timeout, what=f"{count} messages consumed")

    def recorded_ids(self) -> list[str]:
        """Every id written to the JSONL file, repeats included (there must be none)."""
        return [json.loads(line)["msg_id"] for line in self.jsonl.read_text().splitlines() if line]

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=30)
        self.source.close()
        self.recorder.close()
        assert self.summary is not None
        return self.summary


@pytest.fixture
def stomp_consumer(
    running_activemq: ActiveMQBroker, destination: str, tmp_path: Path
) -> Iterator[Callable[[], RunningConsumer]]:
    """Start a consumer with a durable subscription (it survives broker restarts) on ``destination``."""
    started: list[RunningConsumer] = []

    def start() -> RunningConsumer:
        name = f"test-{uuid.uuid4().hex[:8]}"
        source = StompSource([("127.0.0.1", running_activemq.port)], destination, durable=name)
        consumer = RunningConsumer(source, tmp_path / f"{name}.jsonl")
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        if consumer.summary is None:
            consumer.stop()


@pytest.fixture
def stream_consumer(running_redis: RedisServer, stream: str, tmp_path: Path) -> Iterator[Callable[[], RunningConsumer]]:
    started: list[RunningConsumer] = []

    def start() -> RunningConsumer:
        source = RedisStreamSource(running_redis.url, stream, "jedi", "consumer-1", from_beginning=True)
        consumer = RunningConsumer(source, tmp_path / f"{stream}.jsonl")
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        if consumer.summary is None:
            consumer.stop()
