#!/usr/bin/env python3
"""Release latency: for every file, the time from landing on disk to its file_stagein message being
delivered to the configured sink, with realistic tape timing sped up by a time-scale factor.

    .venv/bin/python bench/release_latency.py                       # 2,000 files, 4 datasets, x100
    .venv/bin/python bench/release_latency.py --files 5000 --time-scale 200

The simulated tape system keeps its default hardware (8 drives at 350 MB/s, 90 s mounts, up to
120 s positioning, 0.3 % of files stuck on their first copy); ``--time-scale`` simulated seconds
pass per real second. A file's landing time is its lock's simulated event time mapped back to
real time through the shared clock; its delivery time is its message's ``delivered_at``.

Last line: one JSON object with files, p50_ms, p99_ms, max_ms (and the settings used).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import PYTHON, ROOT, Service, bench_env, percentile, reset_database, wait_until_settled  # noqa: E402


def landing_to_delivery_ms() -> list[float]:
    """Per released file: delivered_at of its message minus its real landing time."""
    from carousel.models import SimLock
    from carousel.tape.clock import stored_clock
    from requests_app.models import Message

    clock = stored_clock()
    landed: dict[str, float] = {}
    for name, event_at in (
        SimLock.objects.filter(fails=False, event_at__lte=clock.horizon())
        .order_by("event_at")
        .values_list("file__name", "event_at")
    ):
        # A re-staged file may land twice; it is released at the first landing.
        landed.setdefault(name, clock.real_time_of(event_at).timestamp())
    latencies = []
    for body, delivered_at in Message.objects.filter(msg_type="file_stagein").values_list("body", "delivered_at"):
        for entry in body["files"]:
            latencies.append((delivered_at.timestamp() - landed[entry["name"]]) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--datasets", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=100.0, help="simulated seconds per real second")
    parser.add_argument(
        "--max-waiting-time", type=float, default=600.0, help="simulated seconds before stuck files are re-staged"
    )
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    env = bench_env("release_latency", 6, IDDS_TAPE_TIME_SCALE=str(args.time_scale))
    reset_database(env)
    subprocess.run(
        [PYTHON, "manage.py", "carousel_catalogue", "--datasets", str(args.datasets), "--files", str(args.files)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "IDDS_TAPE_TIME_SCALE")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    import django

    django.setup()
    from carousel.campaign import campaign_submit
    from carousel.models import SimDataset

    with Service(env, web=False, beat=True):
        time.sleep(3)  # let the worker connect first
        started = time.perf_counter()
        campaign_submit(
            datasets=list(SimDataset.objects.order_by("id")),
            campaign="latency",
            workload_id=1,
            dest_rse="SIM_DATADISK",
            max_waiting_time=args.max_waiting_time,
        )
        wait_until_settled(timeout=args.timeout, what="the campaign")
        wall = time.perf_counter() - started
    latencies = landing_to_delivery_ms()
    result = {
        "files": len(latencies),
        "time_scale": args.time_scale,
        "wall_s": round(wall, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies, default=0.0), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
