"""Benchmark: the conductor delivering outbox messages to ActiveMQ (STOMP) and to Redis Streams.

    .venv/bin/python bench/messaging.py     # or with DATABASE_URL=postgres://... REDIS_URL=... of your own

For each sink it starts a Celery worker (solo pool, ``conductor`` queue) configured with only
that sink, and a reference consumer on the far side, then measures two things:

1. **Throughput**: ``--messages`` file messages (1 to 2000 files each, log-uniform, so most are
   small and a few are large: mean about 270 files, ~51 kB) are committed as a backlog, then
   the conductor is woken; messages/s and files/s run from the wake-up to the last
   ``delivered_at``. The consumer must receive every one (checked).
2. **Latency**: messages are committed with ``messages_write`` (which wakes the conductor after
   commit, as the agents do) at ``--rate`` messages/s for ``--seconds`` seconds; the p99 of
   ``delivered_at - created_at`` is ``p99_commit_to_ack_ms`` (``delivered_at`` is written right
   after the broker's receipt / the XADD reply).

ActiveMQ is the Debian service (installed and started if absent, stopped again afterwards);
Redis is the one at ``REDIS_URL``. The last line printed is one JSON object keyed by sink.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
if "DATABASE_URL" not in os.environ:
    # Nothing configured: a database and Redis db of the benchmark's own, created afresh.
    from bench._harness import bench_env, reset_database

    _env = bench_env("messaging", 5)
    reset_database(_env)
    os.environ.update({"DATABASE_URL": _env["DATABASE_URL"], "REDIS_URL": _env["REDIS_URL"]})

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import Max  # noqa: E402

from idds_site.celery import app as celery_app  # noqa: E402
from requests_app.models import Collection, Message, Request, Transform  # noqa: E402
from requests_app.models.statuses import (  # noqa: E402
    CollectionRelationType,
    ContentStatus,
    MessageStatus,
    RequestStatus,
    RequestType,
)
from requests_app.services.messages import FILES_PER_MESSAGE, file_entry, file_messages, messages_write  # noqa: E402
from tools.brokers import DEFAULT_ACTIVEMQ_STOMP_PORT, ensure_activemq, stop_activemq  # noqa: E402

DESTINATION = "/topic/idds.bench"
STREAM = "idds-bench"
# Several transforms, as several staged datasets would have, so per-transform ordering is exercised.
TRANSFORMS = 16
INSERT_BATCH = 500


def file_counts(count: int, rng: random.Random, max_files: int = FILES_PER_MESSAGE) -> list[int]:
    """Files per message, log-uniform on [1, max_files]: carousel polls mostly release a few files."""
    top = math.log(max_files)
    return [max(1, min(max_files, round(math.exp(rng.uniform(0, top))))) for _ in range(count)]


def make_targets() -> list[tuple[Transform, Collection]]:
    """A request with ``TRANSFORMS`` transforms and output collections for the messages to point at."""
    request = Request.objects.create(
        request_type=RequestType.STAGE_IN,
        scope="bench",
        name=f"bench.messaging.{uuid.uuid4().hex[:8]}",
        workload_id=990_000,
        status=RequestStatus.TRANSFORMING,
    )
    targets = []
    for index in range(TRANSFORMS):
        transform = Transform.objects.create(
            request=request, transform_type=RequestType.STAGE_IN, workload_id=990_000 + index
        )
        collection = Collection.objects.create(
            transform=transform,
            request=request,
            relation_type=CollectionRelationType.OUTPUT,
            scope="data18_13TeV",
            name=f"data18_13TeV.00348885.physics_Main.deriv.DAOD_PHYS.r13286_p4910.{index}",
        )
        targets.append((transform, collection))
    return targets


def build_messages(targets, counts: list[int], rng: random.Random) -> list[Message]:
    """Unsaved file messages in the conductor's own shape (``services.messages.file_messages``)."""
    messages = []
    for serial, files in enumerate(counts):
        transform, collection = targets[rng.randrange(len(targets))]
        entries = [
            file_entry(
                "data18_13TeV",
                f"DAOD_PHYS.{serial:07d}._{n:06d}.pool.root.1",
                None,
                ContentStatus.AVAILABLE,
            )
            for n in range(files)
        ]
        messages += file_messages(transform=transform, work_type_name="stagein", collection=collection, files=entries)
    return messages


def start_worker(sink: str, env: dict[str, str]) -> subprocess.Popen:
    """A Celery worker for the conductor queue, configured with only ``sink``."""
    name = f"bench-messaging-{uuid.uuid4().hex[:6]}@%h"
    command = [sys.executable, "-m", "celery", "-A", "idds_site", "worker", "-Q", "conductor", "--pool", "solo"]
    command += ["-n", name, "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env | {"IDDS_MESSAGE_SINKS": sink})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if celery_app.control.ping(timeout=0.5):
            return worker
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited with {worker.returncode}")
    worker.terminate()
    raise RuntimeError("celery worker did not answer a ping within 60 s")


def start_consumer(sink: str, env: dict[str, str], jsonl: Path) -> subprocess.Popen:
    """The reference consumer, recording what it receives in ``jsonl``."""
    command = [sys.executable, "-m", "tools.consumer", "--quiet", "--jsonl", str(jsonl)]
    if sink == "stomp":
        command += ["--stomp", f"127.0.0.1:{DEFAULT_ACTIVEMQ_STOMP_PORT}", "--destination", DESTINATION]
    else:
        command += ["--redis", settings.IDDS_STREAM_REDIS_URL, "--stream", STREAM, "--group", f"bench-{uuid.uuid4()}"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def stop_consumer(consumer: subprocess.Popen, jsonl: Path, expected: int, timeout: float = 120.0) -> int:
    """Wait until the consumer recorded ``expected`` messages (or time is up); stop it; return its count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_bytes().splitlines()) < expected):
        time.sleep(0.2)
    consumer.send_signal(signal.SIGINT)
    summary = json.loads(consumer.communicate(timeout=60)[0].strip().splitlines()[-1])
    return summary["messages"]


def wait_delivered(ids: list[int], timeout: float) -> None:
    """Wait until every message in ``ids`` is Delivered, nudging the conductor as beat would."""
    deadline = time.monotonic() + timeout
    last_nudge = 0.0
    while time.monotonic() < deadline:
        pending = Message.objects.filter(pk__in=ids).exclude(status=MessageStatus.DELIVERED)
        if not pending.exists():
            return
        if Message.objects.filter(pk__in=ids, status=MessageStatus.FAILED).exists():
            raise RuntimeError("a benchmark message ended Failed: " + pending.first().last_error)
        if time.monotonic() - last_nudge > 2.0:  # the beat schedule's conductor tick
            celery_app.send_task("idds.conductor.messages_deliver", queue="conductor")
            last_nudge = time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"messages not delivered within {timeout:.0f} s")


def throughput_phase(targets, count: int, max_files: int, rng: random.Random) -> dict[str, float]:
    messages = build_messages(targets, file_counts(count, rng, max_files), rng)
    ids: list[int] = []
    for start in range(0, len(messages), INSERT_BATCH):
        with transaction.atomic():  # bulk_create alone: no wake-up per commit, the backlog waits
            ids += [m.pk for m in Message.objects.bulk_create(messages[start : start + INSERT_BATCH])]
    files = sum(m.num_contents for m in messages)
    # Bodies grow with the keys a message carries: bytes/s compares runs whose bodies differ.
    body_bytes = sum(len(json.dumps(m.body, separators=(",", ":"))) for m in messages)
    started = time.time()
    celery_app.send_task("idds.conductor.messages_deliver", queue="conductor")
    wait_delivered(ids, timeout=600)
    last = Message.objects.filter(pk__in=ids).aggregate(last=Max("delivered_at"))["last"].timestamp()
    elapsed = last - started
    return {
        "messages": len(ids),
        "files": files,
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(len(ids) / elapsed, 1),
        "files_per_s": round(files / elapsed, 1),
        "mean_body_kb": round(body_bytes / len(messages) / 1000, 1),
        "body_mb_per_s": round(body_bytes / elapsed / 1e6, 2),
    }


def latency_phase(targets, rate: float, seconds: float, max_files: int, rng: random.Random) -> dict[str, float]:
    """Commit small transactions at ``rate`` messages/s; p99 of commit -> broker acknowledgement."""
    per_commit = max(1, round(rate / 20))  # 20 commits a second, like busy carrier polls
    ids: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        batch = build_messages(targets, file_counts(per_commit, rng, max_files), rng)
        with transaction.atomic():
            ids += [m.pk for m in messages_write(batch)]
        time.sleep(max(0.0, started + len(ids) / rate - time.monotonic()))
    wait_delivered(ids, timeout=300)
    latencies = sorted(
        (delivered - created).total_seconds() * 1000
        for created, delivered in Message.objects.filter(pk__in=ids).values_list("created_at", "delivered_at")
    )
    return {
        "offered_msgs_per_s": rate,
        "p50_commit_to_ack_ms": round(latencies[len(latencies) // 2], 1),
        "p99_commit_to_ack_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
    }


def run_sink(sink: str, args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, object]:
    rng = random.Random(args.seed)
    targets = make_targets()
    jsonl = workdir / f"{sink}.jsonl"
    consumer = start_consumer(sink, env, jsonl) if args.consumer else None
    time.sleep(1.0)  # the consumer subscribes before anything is published (topics keep nothing)
    worker = start_worker(sink, env)
    try:
        result: dict[str, object] = throughput_phase(targets, args.messages, args.max_files, rng)
        result |= latency_phase(targets, args.rate, args.seconds, args.max_files, rng)
        if consumer is not None:
            sent = Message.objects.filter(request=targets[0][0].request).count()
            result["consumer_received"] = stop_consumer(consumer, jsonl, sent)
            result["consumer_missing"] = sent - result["consumer_received"]
            consumer = None
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        if consumer is not None:
            consumer.kill()
        targets[0][0].request.delete()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="backlog size of the throughput phase")
    parser.add_argument("--max-files", type=int, default=FILES_PER_MESSAGE, help="files in the largest message")
    parser.add_argument("--rate", type=float, default=200.0, help="offered messages/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    parser.add_argument("--sinks", default="stomp,redis")
    parser.add_argument("--no-consumer", dest="consumer", action="store_false", help="publish with nobody reading")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "idds_site.settings",
        "IDDS_STOMP_HOSTS": f"127.0.0.1:{DEFAULT_ACTIVEMQ_STOMP_PORT}",
        "IDDS_STOMP_DESTINATION": DESTINATION,
        "IDDS_STREAM_NAME": STREAM,
        "LOG_LEVEL": "WARNING",
    }
    started_activemq = False
    results: dict[str, object] = {}
    workdir = Path(tempfile.mkdtemp(prefix="idds-bench-messaging-"))
    try:
        for sink in args.sinks.split(","):
            if sink == "stomp":
                started_activemq = ensure_activemq() or started_activemq
            results[sink] = run_sink(sink, args, env, workdir)
            print(f"{sink}: {json.dumps(results[sink])}", file=sys.stderr, flush=True)
    finally:
        if started_activemq:
            stop_activemq()
        import redis

        redis.Redis.from_url(settings.IDDS_STREAM_REDIS_URL).delete(STREAM)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
