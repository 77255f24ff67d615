#!/usr/bin/env python3
"""Carousel benchmark: the reference campaign (426,331 files in 63 datasets) staged through the whole
pipeline on zero-latency simulated tape, against the raw-database floor measured in the same run.

    .venv/bin/python bench/carousel.py               # the reference campaign
    .venv/bin/python bench/carousel.py --files 20000 # scaled down
    .venv/bin/python bench/carousel.py --backend rucio --files 50000  # through a real Rucio server
    .venv/bin/python bench/carousel.py --backend rucio --events --files 50000  # with transfer events

With ``--backend rucio`` the benchmark starts a real Rucio server (tools/rucio_deployment.py: its own
PostgreSQL database, the deployment, the test transfer tool with zero latency), registers the
catalogue's datasets and files in it (one tape replica each; not timed), and the service stages
them with IDDS_STAGING_BACKEND=rucio to a disk RSE. ``--timeout`` is then a time budget: a run cut
by it still reports how far it got (``timed_out``, ``released``, ``files_per_s`` of released files).
It also reports what the lock listings cost: the
server time of every ``GET /rules/{id}/locks`` (from the server's access log), per lock, and a full
listing of the largest rule timed from the client, projected to the reference campaign's largest
dataset (35,378 files). The server is stopped at the end.

The service (Celery worker with its default set-up, and beat) runs on PostgreSQL + Redis with
IDDS_TAPE_TIME_SCALE=0. The clock runs from the first submit until every request ended and every
message was delivered to the configured sink (plan, rules, polls, releases, messages).

The floor is what the database alone needs for the same visible work: the same number of content
rows moved to Available by plain bulk UPDATEs (one per dataset) and the same message rows inserted
by one INSERT ... SELECT, in the same database right after the run.

Last line: one JSON object with files, datasets, wall_s, files_per_s, floor_s, ratio_to_floor,
peak_rss_mb (the largest worker process), messages (and, through Rucio, the figures above).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import (  # noqa: E402
    PYTHON,
    ROOT,
    Service,
    bench_env,
    reset_database,
    wait_until_settled,
)
from tools.servers import process_tree  # noqa: E402

REFERENCE_FILES = 426_331
# The reference campaign's largest dataset: the rule whose full lock listing each poll is projected.
REFERENCE_LARGEST_DATASET = 35_378
LOCK_LISTING = re.compile(r"^GET /rules/[0-9a-f]{32}/locks/? 200 (\d+)$")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (and their reaped children), from /proc."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_backends(database: str) -> list[int]:
    """PostgreSQL backends serving ``database`` (their process title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres:") and f" {database} " in title:
                pids.append(int(entry.name))
    return pids


class RssSampler(threading.Thread):
    """Samples the resident memory of every process of the worker's tree; keeps the peak."""

    def __init__(self, root_pid: int, database: str) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.database = database
        # Per backend, the most CPU seen: backends that exit before the end still count.
        self.postgres_cpu: dict[int, float] = {}
        self.peak_process_mb = 0.0
        self.peak_total_mb = 0.0
        self.worker_cpu_s = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            tree = process_tree(self.root_pid)
            self.worker_cpu_s = max(self.worker_cpu_s, _cpu_seconds(tree))
            for pid in _postgres_backends(self.database):
                self.postgres_cpu[pid] = max(self.postgres_cpu.get(pid, 0.0), _cpu_seconds([pid]))
            sizes = [_rss_mb(pid) for pid in tree]
            self.peak_process_mb = max(self.peak_process_mb, max(sizes, default=0.0))
            self.peak_total_mb = max(self.peak_total_mb, sum(sizes))


def measure_floor(datasets: int) -> float:
    """Plain bulk SQL for the same content updates and message inserts, in one transaction each."""
    from django.db import connection, transaction

    from requests_app.models import Collection, Content, Message
    from requests_app.models.statuses import CollectionRelationType, ContentStatus, MessageStatus

    outputs = list(Collection.objects.filter(relation_type=CollectionRelationType.OUTPUT).values_list("pk", flat=True))
    Content.objects.filter(collection_id__in=outputs).update(status=ContentStatus.NEW)
    messages = Message.objects.count()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for collection_id in outputs:
            cursor.execute(
                f"UPDATE {Content._meta.db_table} SET status = %s, status_changed_at = now(), updated_at = now() "
                "WHERE collection_id = %s AND status = %s",
                [ContentStatus.AVAILABLE, collection_id, ContentStatus.NEW],
            )
        cursor.execute(
            f"INSERT INTO {Message._meta.db_table} (msg_id, msg_type, status, request_id, transform_id, "
            "processing_id, collection_id, workload_id, num_contents, body, attempts, last_error, delivered_to, "
            "created_at, updated_at) "
            "SELECT md5(random()::text || id::text), msg_type, %s, request_id, transform_id, processing_id, "
            "collection_id, workload_id, num_contents, body, 0, '', '[]'::jsonb, now(), now() "
            f"FROM {Message._meta.db_table} ORDER BY id LIMIT %s",
            [MessageStatus.NEW, messages],
        )
    return time.perf_counter() - started


def register_in_rucio(root, datasets) -> None:
    """Each catalogue dataset and its files (names, sizes, checksums) in Rucio, on one tape RSE (no
    transfer fails in the benchmark, so a second copy would only double the registration time)."""
    from carousel.models import SimFile
    from tools.rucio_deployment import TAPES, register_dataset

    for dataset in datasets:
        files = [
            {"scope": scope, "name": name, "bytes": size, "adler32": adler32}
            for scope, name, size, adler32 in SimFile.objects.filter(dataset=dataset)
            .order_by("id")
            .values_list("scope", "name", "bytes", "adler32")
        ]
        register_dataset(root, dataset.scope, dataset.name, files, replicas=TAPES[:1])


def _lock_count(rule: dict) -> int:
    """Every lock of a rule (a full listing lists them all, whatever their state)."""
    return sum(int(rule.get(key) or 0) for key in ("locks_ok_cnt", "locks_replicating_cnt", "locks_stuck_cnt"))


def lock_listing_figures(deployment, rule_files: dict[str, int]) -> dict[str, float | int]:
    """What the service's lock listings cost the Rucio server, from its access log, and one full
    listing of the largest rule timed from the client (three times; the fastest counts)."""
    from tools.rucio_deployment import client

    listings = 0
    locks = 0
    server_s = 0.0
    for line in deployment.server.access_log_path.read_text().splitlines():
        match = LOCK_LISTING.match(line)
        if match:
            rule_id = line.split("/")[2]
            listings += 1
            locks += rule_files.get(rule_id, 0)
            server_s += int(match.group(1)) / 1e6
    largest_rule, largest_files = max(rule_files.items(), key=lambda item: item[1])
    service = client(deployment.url)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        listed = sum(1 for _ in service.list_replica_locks(largest_rule))
        timings.append(time.perf_counter() - started)
    per_lock_ms = min(timings) / max(listed, 1) * 1000
    return {
        "lock_listings": listings,
        "locks_listed": locks,
        "lock_listing_server_s": round(server_s, 1),
        "lock_listing_server_ms_per_lock": round(server_s / max(locks, 1) * 1000, 3),
        "largest_rule_files": largest_files,
        "largest_rule_listing_s": round(min(timings), 2),
        "listing_ms_per_lock": round(per_lock_ms, 3),
        "projected_listing_s_35378_files": round(per_lock_ms * REFERENCE_LARGEST_DATASET / 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=REFERENCE_FILES, help="scale the campaign down")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default set-up: 2)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--backend", choices=["simulator", "rucio"], default="simulator")
    parser.add_argument(
        "--events",
        action="store_true",
        help="with --backend rucio: Rucio's Hermes sends transfer-done messages to an ActiveMQ started "
        "here, carousel_rucio_events records them and the polls take landed files from them",
    )
    args = parser.parse_args()
    # A stopped benchmark still stops what it started (the ``with`` blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.backend == "rucio":
        # A database and Redis db of its own: a simulator run beside it must not reset them.
        env = bench_env("carousel_rucio", int(os.environ.get("BENCH_RUCIO_REDIS_DB", "5")), IDDS_TAPE_TIME_SCALE="0")
    else:
        env = bench_env("carousel", 6, IDDS_TAPE_TIME_SCALE="0")
    reset_database(env)
    catalogue = [PYTHON, "manage.py", "carousel_catalogue", "--preset", "reference"]
    if args.files != REFERENCE_FILES:
        catalogue += ["--files", str(args.files), "--tag", f"f{args.files}"]
    subprocess.run(catalogue, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "IDDS_TAPE_TIME_SCALE")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    import django

    django.setup()
    from carousel.models import SimDataset

    datasets = list(SimDataset.objects.order_by("id"))
    if args.backend == "simulator":
        result = run_campaign(env, datasets, args, dest_rse="SIM_DATADISK")
        result.pop("started_at")
    else:
        result = run_through_rucio(env, datasets, args)
    print(json.dumps(result))


def run_through_rucio(env: dict[str, str], datasets: list, args: argparse.Namespace) -> dict:
    """The campaign through a real Rucio server started (and stopped) here."""
    import shutil

    from tools.rucio_deployment import ACCOUNT, DISK, PASSWORD, RucioDeployment

    directory = ROOT / "var" / "bench" / "rucio"
    shutil.rmtree(directory, ignore_errors=True)
    deployment = RucioDeployment(
        directory,
        database=env["DATABASE_URL"].rsplit("/", 1)[1] + "_rucio",
        postgres_url=env["DATABASE_URL"],
        scopes=sorted({dataset.scope for dataset in datasets}),
        scale=0.0,
        drives=2,
        access_log=True,
    )
    with deployment, contextlib.ExitStack() as stack:
        started = time.perf_counter()
        register_in_rucio(deployment.root, datasets)
        register_s = time.perf_counter() - started
        rucio = {
            "IDDS_STAGING_BACKEND": "rucio",
            "IDDS_RUCIO_HOST": deployment.url,
            "IDDS_RUCIO_ACCOUNT": ACCOUNT,
            "IDDS_RUCIO_USERNAME": ACCOUNT,
            "IDDS_RUCIO_PASSWORD": PASSWORD,
            "IDDS_RUCIO_EVENTS": "true" if args.events else "false",
        }
        if args.events:
            rucio.update(start_event_path(stack, deployment, {**env, **rucio}))
        env = {**env, **rucio}
        os.environ.update(rucio)
        result = run_campaign(env, datasets, args, dest_rse=DISK)
        from carousel.models import RucioTransferEvent
        from requests_app.models import Processing

        result["events"] = args.events
        result["events_recorded"] = RucioTransferEvent.objects.count()
        result["dataset_rule_listings"] = sum(
            (meta.get("rules") or [{}])[0].get("listings", 0)
            for meta in Processing.objects.values_list("processing_metadata", flat=True)
        )

        rule_ids = [
            rule_id
            for meta in Processing.objects.values_list("processing_metadata", flat=True)
            for group in meta.get("rules", [])
            for rule_id in group["rule_ids"]
        ]
        rule_files = {rule_id: _lock_count(deployment.root.get_replication_rule(rule_id)) for rule_id in set(rule_ids)}
        events = [json.loads(line) for line in deployment.events_path.read_text().splitlines() if line]
        transfers_done_s = max(event["at"] for event in events) - result.pop("started_at") if events else None
        return {
            "backend": "rucio",
            **result,
            "register_s": round(register_s, 1),
            "rucio_transfers": len(events),
            "rucio_transfers_done_s": round(transfers_done_s, 1) if transfers_done_s else None,
            "polls": sum(Processing.objects.values_list("poll_count", flat=True)),
            **lock_listing_figures(deployment, rule_files),
        }


def start_event_path(stack: contextlib.ExitStack, deployment, env: dict[str, str]) -> dict[str, str]:
    """ActiveMQ, Rucio's Hermes sending to it, and the service's event recorder; stopped by ``stack``."""
    from tools.brokers import ActiveMQBroker
    from tools.rucio_server import start_hermes, stop_process
    from tools.servers import free_port

    destination = "/queue/rucio.events"
    broker = stack.enter_context(ActiveMQBroker(free_port(), deployment.directory / "activemq"))
    hermes = start_hermes(deployment.server, broker=broker.host_and_port, destination=destination)
    stack.callback(stop_process, hermes)
    settings = {"IDDS_RUCIO_EVENTS_STOMP": broker.host_and_port, "IDDS_RUCIO_EVENTS_DESTINATION": destination}
    log = (ROOT / "var" / "bench" / "rucio-events.log").open("ab")
    recorder = subprocess.Popen(
        [PYTHON, "manage.py", "carousel_rucio_events"],
        cwd=ROOT,
        env={**env, **settings},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(stop_process, recorder)
    return settings


def settled_within(timeout: float) -> bool:
    """Whether every request ended and every message was delivered within ``timeout`` seconds. Through
    Rucio the run may be cut at its time budget: the figures then say how far it got."""
    from requests_app.models import Message, Request
    from requests_app.models.statuses import REQUEST_TERMINAL, MessageStatus

    deadline = time.monotonic() + timeout
    while Request.objects.exclude(status__in=REQUEST_TERMINAL).exists() or (
        Message.objects.exclude(status=MessageStatus.DELIVERED).exists()
    ):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def run_campaign(env: dict[str, str], datasets: list, args: argparse.Namespace, *, dest_rse: str) -> dict:
    """Submit the campaign to a running service and time it until every request ended."""
    from carousel.campaign import campaign_submit
    from requests_app.models import Collection, Message, Request
    from requests_app.models.statuses import CollectionRelationType, RequestStatus

    load_before = os.getloadavg()[0]
    files = sum(row.total_files for row in datasets)
    with Service(env, web=False, beat=True, concurrency=args.concurrency) as service:
        database = env["DATABASE_URL"].rsplit("/", 1)[1]
        time.sleep(3)  # let the worker connect before the clock starts
        worker_cpu_before = _cpu_seconds(process_tree(service.worker.pid))
        postgres_before = {pid: _cpu_seconds([pid]) for pid in _postgres_backends(database)}
        sampler = RssSampler(service.worker.pid, database)
        sampler.start()
        started_at = time.time()
        started = time.perf_counter()
        campaign_submit(datasets=datasets, campaign="bench", workload_id=1, dest_rse=dest_rse)
        if args.backend == "rucio":
            timed_out = not settled_within(args.timeout)
        else:
            wait_until_settled(timeout=args.timeout, what="the campaign")
            timed_out = False
        wall = time.perf_counter() - started
        worker_cpu = _cpu_seconds(process_tree(service.worker.pid)) - worker_cpu_before
        sampler.stopped.set()
        sampler.join()
        postgres_cpu = sum(cpu - postgres_before.get(pid, 0.0) for pid, cpu in sampler.postgres_cpu.items())
    finished = Request.objects.filter(status=RequestStatus.FINISHED).count()
    released = sum(
        Collection.objects.filter(relation_type=CollectionRelationType.OUTPUT).values_list("processed_files", flat=True)
    )
    messages = Message.objects.count()
    floor = measure_floor(len(datasets))
    return {
        "files": files,
        "datasets": len(datasets),
        "timed_out": timed_out,
        "released": released,
        "finished_requests": finished,
        "messages": messages,
        "wall_s": round(wall, 2),
        "files_per_s": round(released / wall, 1),
        "floor_s": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 2),
        "peak_rss_mb": round(sampler.peak_process_mb, 1),
        "peak_rss_worker_tree_mb": round(sampler.peak_total_mb, 1),
        # What limits the figure: CPU seconds spent by the worker processes and by PostgreSQL for this
        # database, and the machine's load when the run started (other work slows it down).
        "load_average_at_start": round(load_before, 2),
        "worker_cpu_s": round(worker_cpu, 1),
        "postgres_cpu_s": round(postgres_cpu, 1),
        "started_at": started_at,
    }


if __name__ == "__main__":
    main()
