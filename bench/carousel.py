#!/usr/bin/env python3
"""Carousel benchmark: the reference campaign (426,331 files in 63 datasets) staged through the whole
pipeline on zero-latency simulated tape, against the raw-database floor measured in the same run.

    .venv/bin/python bench/carousel.py               # the reference campaign
    .venv/bin/python bench/carousel.py --files 20000 # scaled down

The service (Celery worker with its default set-up, and beat) runs on PostgreSQL + Redis with
IDDS_TAPE_TIME_SCALE=0. The clock runs from the first submit until every request ended and every
message was delivered to the configured sink (plan, rules, polls, releases, messages).

The floor is what the database alone needs for the same visible work: the same number of content
rows moved to Available by plain bulk UPDATEs (one per dataset) and the same message rows inserted
by one INSERT ... SELECT, in the same database right after the run.

Last line: one JSON object with files, datasets, wall_s, files_per_s, floor_s, ratio_to_floor,
peak_rss_mb (the largest worker process), messages.
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=REFERENCE_FILES, help="scale the campaign down")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default set-up: 2)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

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
    from carousel.campaign import campaign_submit
    from carousel.models import SimDataset
    from requests_app.models import Collection, Message, Request
    from requests_app.models.statuses import CollectionRelationType, RequestStatus

    load_before = os.getloadavg()[0]

    datasets = list(SimDataset.objects.order_by("id"))
    files = sum(row.total_files for row in datasets)
    with Service(env, web=False, beat=True, concurrency=args.concurrency) as service:
        database = env["DATABASE_URL"].rsplit("/", 1)[1]
        time.sleep(3)  # let the worker connect before the clock starts
        worker_cpu_before = _cpu_seconds(process_tree(service.worker.pid))
        postgres_before = {pid: _cpu_seconds([pid]) for pid in _postgres_backends(database)}
        sampler = RssSampler(service.worker.pid, database)
        sampler.start()
        started = time.perf_counter()
        campaign_submit(datasets=datasets, campaign="bench", workload_id=1, dest_rse="SIM_DATADISK")
        wait_until_settled(timeout=args.timeout, what="the campaign")
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
    result = {
        "files": files,
        "datasets": len(datasets),
        "released": released,
        "finished_requests": finished,
        "messages": messages,
        "wall_s": round(wall, 2),
        "files_per_s": round(files / wall, 1),
        "floor_s": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 2),
        "peak_rss_mb": round(sampler.peak_process_mb, 1),
        "peak_rss_worker_tree_mb": round(sampler.peak_total_mb, 1),
        # What limits the figure: CPU seconds spent by the worker processes and by PostgreSQL for this
        # database, and the machine's load when the run started (other work slows it down).
        "load_average_at_start": round(load_before, 2),
        "worker_cpu_s": round(worker_cpu, 1),
        "postgres_cpu_s": round(postgres_cpu, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
