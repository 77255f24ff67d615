#!/usr/bin/env python3
"""Pipeline benchmark: N requests of the test work type submitted over REST by C concurrent
clients against gunicorn + a Celery worker + beat on PostgreSQL and Redis, until all Finished.

    .venv/bin/python bench/pipeline.py --requests 1000 --clients 8

Last line: one JSON object with requests, clients, submit_per_s, submit_p50_ms, submit_p99_ms,
all_finished_s (from the first submit until the last request is Finished).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import Service, bench_env, issue_token, percentile, reset_database, wait_until_settled  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--files", type=int, default=10, help="output files per request")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    env = bench_env("pipeline", 2, IDDS_EXTRA_WORK_TYPES="99=tests.worktypes.CountdownWorkType")
    reset_database(env)
    token = issue_token(env)
    os.environ.update({"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    import django

    django.setup()
    from requests_app.models import Request
    from requests_app.models.statuses import RequestStatus

    body = {"request_type": 99, "request_metadata": {"files": args.files, "files_per_poll": args.files}}
    latencies: list[float] = []

    with Service(env) as service:
        url = f"{service.url}/api/v1/requests/"

        def client(count: int) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            for index in range(count):
                started = time.perf_counter()
                response = session.post(url, json={**body, "workload_id": index}, timeout=(5, 30))
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        shares = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, shares))
        submit_s = time.perf_counter() - started
        wait_until_settled(timeout=args.timeout, messages=False)
        all_finished_s = time.perf_counter() - started
        finished = Request.objects.filter(status=RequestStatus.FINISHED).count()

    result = {
        "requests": args.requests,
        "clients": args.clients,
        "files_per_request": args.files,
        "finished": finished,
        "submit_per_s": round(args.requests / submit_s, 1),
        "submit_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "submit_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "all_finished_s": round(all_finished_s, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
