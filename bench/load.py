"""Bounded load test: submissions, listings and HPO checkout/report mixed, on loopback, with locust.

The script starts everything itself and stops it at the end: a fresh PostgreSQL database
(``idds_bench_load``) and Redis db, gunicorn (2 processes x 4 threads), a Celery worker and beat
(bench/_harness.py), a simulated tape catalogue and a user with a token. It then runs ``--users``
simulated clients (locust as a library, no web UI) for ``--seconds`` (at most 90), each picking
at random, by weight:

- submit a stage-in request for a simulated dataset (the tape runs at IDDS_TAPE_TIME_SCALE=3600,
  so requests really stage while the test runs), or an HPO study with the random generator;
- list requests, one request's contents (``/contents/?collection=``), the message outbox;
- check out a point of one of a few running studies and report a loss for it.

Counted as errors: every transport failure or time-out, every 5xx, every 4xx except the 409s the
HPO protocol announces for a point the client no longer holds (the client then drops the point,
as a worker must; counted apart as ``expected_conflicts``), and a 2xx whose body is not what the
protocol says. An empty checkout (no free point right now) is a normal answer, counted apart.

    .venv/bin/python bench/load.py [--users 20] [--seconds 60]

The last line printed is one JSON object: requests per second, p50/p99 in ms overall and per
request kind, the error count and the error kinds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

# isort: off
# Importing locust patches the standard library for gevent: it must come before requests (ssl).
from locust import FastHttpUser, between, task
from locust.env import Environment
from locust.log import setup_logging

import gevent
import requests

# isort: on

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import PYTHON, ROOT, Service, bench_env, issue_token, reset_database  # noqa: E402

# With set-up (~15 s) and shutdown the whole run stays within about two minutes.
MAX_SECONDS = 90
MAX_USERS = 100
DATASETS = 400
FILES_PER_DATASET = 10
STUDIES = 3
HPO_SPACE = {"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}, "dropout": [0.0, 0.5]}
# Big generations keep free points in stock, so checkouts measure the API, not the generator.
STUDY_METADATA = {
    "opt_space": HPO_SPACE,
    "method": "random",
    "max_points": 100_000,
    "num_points_per_generation": 500,
    "min_unevaluated_points": 200,
    "seed": 1,
}
# Submitted studies stay small: they exercise the generator path without eating the CPU.
SUBMITTED_STUDY = {**STUDY_METADATA, "max_points": 20, "num_points_per_generation": 5, "min_unevaluated_points": 2}
# Per kind: which status codes the protocol allows as an answer the client handles.
EXPECTED_CONFLICT = 409
counters: Counter[str] = Counter()


def fail(response, why: str) -> None:
    """Mark a locust response failed with a short, groupable reason (the error kind)."""
    response.failure(why)


def check(response, *, ok: tuple[int, ...], body_check=None, name: str) -> object | None:
    """Judge one response: success, an error kind, or (for HPO verbs) an expected conflict."""
    if response.status_code in ok:
        try:
            data = response.json()
        except ValueError:
            fail(response, f"{name}: {response.status_code} without JSON")
            return None
        if body_check is not None and not body_check(data):
            fail(response, f"{name}: {response.status_code} with an unexpected body")
            return None
        response.success()
        return data
    if response.status_code == 0:
        fail(response, f"{name}: transport error {response.error!r}"[:200])
    else:
        fail(response, f"{name}: HTTP {response.status_code} {response.text[:120]!r}")
    return None


class ServiceClient(FastHttpUser):
    """A workload system, a monitoring page and an HPO pilot in one: the weights are the mix."""

    wait_time = between(0.05, 0.2)
    # Filled in by main() before the run: the token and the ids the clients act on.
    token = ""
    studies: list[int] = []
    datasets = itertools.cycle([""])
    worker_ids = itertools.count()

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        self.worker = f"load-{next(self.worker_ids)}"
        self.request_ids: list[int] = []

    def _post(self, path: str, body: dict, name: str):
        return self.client.post(path, data=json.dumps(body), headers=self.headers, name=name, catch_response=True)

    def _get(self, path: str, name: str):
        return self.client.get(path, headers=self.headers, name=name, catch_response=True)

    def _remember(self, data: object) -> bool:
        if isinstance(data, dict) and isinstance(data.get("request_id"), int):
            self.request_ids = [*self.request_ids[-20:], data["request_id"]]
            return True
        return False

    @task(1)
    def submit_stagein(self) -> None:
        body = {
            "request_type": 2,
            "scope": "sim",
            "name": next(self.datasets),
            "requester": "panda",
            "request_metadata": {"workload_id": 4242, "dest_rse": "SIM_DATADISK"},
        }
        with self._post("/api/v1/requests/", body, "submit stagein") as response:
            check(response, ok=(201,), body_check=self._remember, name="submit stagein")

    @task(1)
    def submit_hpo(self) -> None:
        body = {"request_type": 4, "requester": "panda", "request_metadata": SUBMITTED_STUDY}
        with self._post("/api/v1/requests/", body, "submit hpo") as response:
            check(response, ok=(201,), body_check=self._remember, name="submit hpo")

    @task(3)
    def list_requests(self) -> None:
        with self._get("/api/v1/requests/?request_type=StageIn", "list requests") as response:
            check(response, ok=(200,), body_check=lambda d: isinstance(d.get("results"), list), name="list requests")

    @task(2)
    def list_contents(self) -> None:
        with self._get("/api/v1/collections/?relation_type=Output", "list collections") as response:
            page = check(
                response, ok=(200,), body_check=lambda d: isinstance(d.get("results"), list), name="list collections"
            )
        if not page or not page["results"]:
            return
        collection = random.choice(page["results"])["coll_id"]
        with self._get(f"/api/v1/contents/?collection={collection}", "list contents") as response:
            check(response, ok=(200,), body_check=lambda d: isinstance(d.get("results"), list), name="list contents")

    @task(2)
    def list_messages(self) -> None:
        with self._get("/api/v1/messages/", "list messages") as response:
            check(response, ok=(200,), body_check=lambda d: isinstance(d.get("results"), list), name="list messages")

    @task(8)
    def evaluate_point(self) -> None:
        """A pilot's round trip: check out one point, 'evaluate' it, report its loss."""
        study = random.choice(self.studies)
        base = f"/api/v1/hpo/studies/{study}"
        with self._post(f"{base}/checkout/", {"worker": self.worker}, "hpo checkout") as response:
            points = check(response, ok=(200,), body_check=lambda d: isinstance(d, list), name="hpo checkout")
        if not points:
            if points == []:
                counters["empty_checkouts"] += 1
            return
        point = points[0]
        loss = (point["parameters"]["dropout"] - 0.2) ** 2
        with self._post(
            f"{base}/points/{point['id']}/report/", {"worker": self.worker, "loss": loss}, "hpo report"
        ) as (response):
            # 409: the point is no longer this worker's (lease expired, study ended); a worker drops it.
            if response.status_code == EXPECTED_CONFLICT:
                counters["expected_conflicts"] += 1
                response.success()
                return
            check(response, ok=(200,), body_check=lambda d: d.get("status") == "Available", name="hpo report")


def create_studies(url: str, token: str) -> list[int]:
    """Submit the studies the pilots work on and wait until each has points to hand out."""
    headers = {"Authorization": f"Token {token}"}
    body = {"request_type": 4, "requester": "panda", "request_metadata": STUDY_METADATA}
    studies = []
    for _ in range(STUDIES):
        response = requests.post(f"{url}/api/v1/requests/", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        studies.append(response.json()["request_id"])
    deadline = time.monotonic() + 90
    for study in studies:
        while True:
            summary = requests.get(f"{url}/api/v1/hpo/studies/{study}/", headers=headers, timeout=30)
            if summary.status_code == 200 and summary.json()["counts"].get("New", 0) >= 100:
                break
            if time.monotonic() > deadline:
                sys.exit(f"study {study} got no points in time; see var/bench/worker.log")
            time.sleep(0.5)
    return studies


def run_load(url: str, *, users: int, seconds: float) -> tuple[Environment, float]:
    environment = Environment(user_classes=[ServiceClient], host=url, stop_timeout=10)
    runner = environment.create_local_runner()
    started = time.monotonic()
    runner.start(users, spawn_rate=max(users, 1) * 2)
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    return environment, time.monotonic() - started


def figures(environment: Environment, *, users: int, elapsed: float) -> dict[str, object]:
    stats = environment.stats
    total = stats.total

    def summary(entry) -> dict[str, float]:
        return {
            "requests": entry.num_requests,
            "errors": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p99_ms": entry.get_response_time_percentile(0.99),
        }

    errors = Counter()
    for error in stats.errors.values():
        errors[str(error.error)[:200]] += error.occurrences
    # A client that crashed on an answer (a field missing from a 2xx body) is an error too.
    crashes = environment.runner.exceptions.values() if environment.runner else []
    for crash in crashes:
        errors[f"client crash: {crash['msg']}"[:200]] += crash["count"]
    return {
        "users": users,
        "seconds": round(elapsed, 1),
        "requests": total.num_requests,
        "requests_per_s": round(total.num_requests / elapsed, 1),
        "p50_ms": total.get_response_time_percentile(0.5),
        "p99_ms": total.get_response_time_percentile(0.99),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common()),
        "expected_conflicts": counters["expected_conflicts"],
        "empty_checkouts": counters["empty_checkouts"],
        "by_kind": {name: summary(entry) for (name, _method), entry in sorted(stats.entries.items())},
        "errors_counted": "transport failures, time-outs, 5xx, 4xx except HPO report 409, 2xx with a wrong body",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help=f"simulated clients (1..{MAX_USERS})")
    parser.add_argument("--seconds", type=float, default=60, help=f"length of the load (1..{MAX_SECONDS})")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    args = parser.parse_args()
    if not 1 <= args.users <= MAX_USERS or not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--users must be 1..{MAX_USERS} and --seconds 1..{MAX_SECONDS}")

    env = bench_env("load", 6, IDDS_TAPE_TIME_SCALE="3600")
    reset_database(env)
    subprocess.run(
        [PYTHON, "manage.py", "carousel_catalogue", "--datasets", str(DATASETS), "--prefix", "load"]
        + ["--files", str(DATASETS * FILES_PER_DATASET)],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    token = issue_token(env, "load")
    ServiceClient.token = token
    ServiceClient.datasets = itertools.cycle(f"load.{index:04d}" for index in range(DATASETS))
    with Service(env, web=True, beat=True, concurrency=args.concurrency) as service:
        ServiceClient.studies = create_studies(service.url, token)
        environment, elapsed = run_load(service.url, users=args.users, seconds=args.seconds)
    result = figures(environment, users=args.users, elapsed=elapsed)
    print(json.dumps(result))


if __name__ == "__main__":
    setup_logging("WARNING")
    main()
