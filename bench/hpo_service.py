"""HPO point-service benchmark: worker round trips (checkout + report) against a floor, at two study sizes.

Self-contained: it creates its own database (``idds_bench_hpo``, or ``BENCH_DATABASE_URL``), starts gunicorn
(2 processes x 4 threads) and a Celery worker (rolling studies up, generating, delivering messages), runs

1. the **floor**: pairs of ``GET /api/v1/hpo/ping/`` (authenticate with a worker token, answer) — what two
   authenticated requests cost on this server whatever they do;
2. round trips on **200-point studies**: studies of exactly 200 points (``max_points`` 200), each filled by
   one random generation; a client moves to the next study when one has nothing free;
3. round trips on a **10,000-point study** (one generation of 10,000 points);

each at 1 and at ``--clients`` (8) concurrent clients for ``--seconds``, with keep-alive HTTP connections and
a worker token of the study, as pilots would. A round trip is checkout of one point + report of its loss.
Reported per phase: round trips (or pairs) per second, p50/p99 latency, empty checkouts, and the load
average of the machine (1-minute, before and after); ``ratio_to_floor`` divides round trips/s by the floor's
pairs/s at the same concurrency. ``--generation-histories 100,500,1000`` also times 10-point generations
after such histories, per built-in generator (in process; nevergrad may first build its environment).

    .venv/bin/python bench/hpo_service.py [--clients 8] [--seconds 10]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import requests  # noqa: E402

from bench._harness import PYTHON, ROOT, Service, bench_env, free_port, issue_token, percentile, reset_database  # noqa: E402

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "dropout": [0.0, 0.5],
    "layers": {"type": "int", "low": 1, "high": 8},
    "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu"]},
}
GENERATORS = ("random", "grid", "bayesian", "nevergrad")
SMALL, LARGE = 200, 10_000
#: 200-point studies prepared: enough for ~300 round trips/s over the default phase lengths.
SMALL_STUDIES = 40


def start_web(env: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen, str]:
    """gunicorn serving the project."""
    port = free_port()
    log = open(log_dir / "hpo-web.log", "wb")  # noqa: SIM115 - closed with the child
    child = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "idds_site.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "4"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/api/v1/", timeout=1)
            return child, url
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start; see var/bench/hpo-web.log")


class Http:
    """One keep-alive connection (http.client: a fraction of the client CPU ``requests`` would take)."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        self.connection.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


class Study:
    """A study the clients work: its API base path and a worker token of it."""

    def __init__(self, url: str, owner_headers: dict[str, str], *, points: int, per_generation: int) -> None:
        body = {
            "request_type": 4,
            "request_metadata": {
                "opt_space": SPACE,
                "method": "random",
                "max_points": points,
                "num_points_per_generation": per_generation,
                "min_unevaluated_points": 0,
                "seed": 1,
            },
        }
        created = requests.post(f"{url}/api/v1/requests/", json=body, headers=owner_headers, timeout=60)
        created.raise_for_status()
        self.request_id = created.json()["request_id"]
        self.base = f"/api/v1/hpo/studies/{self.request_id}"
        self.points = points
        self.token: str | None = None

    def ready(self, url: str, owner_headers: dict[str, str]) -> bool:
        """Planned and generated: every point exists; issue the worker token then."""
        summary = requests.get(f"{url}{self.base}/", headers=owner_headers, timeout=30)
        if summary.status_code != 200 or summary.json()["counts"].get("New", 0) < self.points:
            return False
        if self.token is None:
            issued = requests.post(f"{url}{self.base}/worker-tokens/", json={"name": "bench"}, headers=owner_headers)
            issued.raise_for_status()
            self.token = issued.json()["key"]
        return True


def wait_ready(url: str, owner_headers: dict[str, str], studies: list[Study], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    pending = list(studies)
    while pending:
        if time.monotonic() > deadline:
            sys.exit(f"{len(pending)} studies were not generated within {timeout:.0f} s; see var/bench/worker.log")
        pending = [study for study in pending if not study.ready(url, owner_headers)]
        time.sleep(0.5)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def run_clients(clients: int, seconds: float, one: Callable[[int, dict], bool]) -> dict[str, float]:
    """``clients`` threads call ``one(index, state)`` until time is up; it returns False for an empty turn."""
    latencies: list[float] = []
    empty = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        state: dict = {}
        mine: list[float] = []
        empties = 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            if one(index, state):
                mine.append(time.perf_counter() - started)
            else:
                empties += 1
        with lock:
            latencies.extend(mine)
            empty[0] += empties

    load_before = load_average()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "count": len(latencies),
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "empty": empty[0],
        "load_before": load_before,
        "load_after": load_average(),
    }


def floor_phase(url: str, token: str, clients: int, seconds: float) -> dict[str, float]:
    """Pairs of authenticated no-op requests."""

    def pair(index: int, state: dict) -> bool:
        http = state.setdefault("http", Http(url, token))
        for _ in range(2):
            status, _ = http.call("GET", "/api/v1/hpo/ping/")
            assert status == 200, status
        return True

    return run_clients(clients, seconds, pair)


def round_trip_phase(url: str, studies: list[Study], clients: int, seconds: float) -> dict[str, float]:
    """Checkout + report; clients share the list of studies and move on together when one runs dry."""
    current = [0]
    lock = threading.Lock()

    def round_trip(index: int, state: dict) -> bool:
        at = current[0]
        if at >= len(studies):
            return False
        study = studies[at]
        if state.get("study") is not study:
            state["study"], state["http"] = study, Http(url, study.token)
        http, worker = state["http"], f"bench-{index}"
        status, points = http.call("POST", f"{study.base}/checkout/", {"worker": worker})
        assert status == 200, (status, points)
        if not points:
            with lock:
                if current[0] == at:
                    current[0] += 1
            return False
        point = points[0]
        body = {"worker": worker, "loss": point["parameters"]["dropout"]}
        status, answer = http.call("POST", f"{study.base}/points/{point['id']}/report/", body)
        assert status == 200, (status, answer)
        return True

    result = run_clients(clients, seconds, round_trip)
    result["studies_used"] = min(current[0] + 1, len(studies))
    return result


def generation_times(histories: list[int]) -> dict[str, dict[str, float]]:
    """Seconds to generate 10 points after each history size, per generator."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    from hpo.generators import generator_class
    from hpo.space_forms import parse_space

    space = parse_space(SPACE)
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    for name in GENERATORS:
        results[name] = {}
        for size in histories:
            points = space.sample(rng, size)
            history = [(p, (np.log10(p["lr"]) + 3) ** 2 + p["dropout"] + 0.1 * p["layers"]) for p in points]
            generator = generator_class(name)(space, seed=1)
            started = time.perf_counter()
            generator.generate(history, 10, size + 10)
            results[name][str(size)] = round(time.perf_counter() - started, 3)
            print(f"generation of 10 points, {name}, history {size}: {results[name][str(size)]} s", flush=True)
    return results


def print_phase(name: str, figures: dict[str, float], unit: str) -> None:
    print(
        f"{name:>18} x{figures['clients']}: {figures['per_s']:7.1f} {unit}/s  p50 {figures['p50_ms']:6.1f} ms  "
        f"p99 {figures['p99_ms']:6.1f} ms  empty {figures['empty']}  load {figures['load_before']}"
        f"->{figures['load_after']}",
        flush=True,
    )


def main() -> None:
    """Prepare the studies, run every phase on one server, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--generation-histories", default="", help="e.g. 100,500,1000 (off by default)")
    args = parser.parse_args()
    # SIGTERM (timeout, Ctrl-C from a supervisor) leaves through the with-block, which stops the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    # BENCH_REDIS_DB: another Redis db when 13 is someone else's on a shared machine.
    env = bench_env("hpo", int(os.environ.get("BENCH_REDIS_DB", "13")))
    reset_database(env)
    token = issue_token(env)
    owner = {"Authorization": f"Token {token}"}
    results: dict[str, dict] = {"floor": {}, "small": {}, "large": {}}
    with Service(
        env, web=False, beat=False, concurrency=1, queues="clerk,transformer,carrier,rollup,hpo,hpo_generate,conductor"
    ) as service:
        web, url = start_web(env, service.log_dir)
        service.children.append(web)
        large = Study(url, owner, points=LARGE, per_generation=LARGE)
        small = [Study(url, owner, points=SMALL, per_generation=SMALL) for _ in range(SMALL_STUDIES)]
        wait_ready(url, owner, [large, *small])
        ping_token = large.token
        assert ping_token is not None
        small_left = iter(small)
        for clients in (1, args.clients):
            results["floor"][str(clients)] = floor_phase(url, ping_token, clients, args.seconds)
            print_phase("floor (pairs)", results["floor"][str(clients)], "pairs")
            # Each small phase starts on studies nobody touched yet.
            fresh = list(itertools.islice(small_left, SMALL_STUDIES // 2))
            results["small"][str(clients)] = round_trip_phase(url, fresh, clients, args.seconds)
            print_phase(f"{SMALL}-point studies", results["small"][str(clients)], "trips")
            results["large"][str(clients)] = round_trip_phase(url, [large], clients, args.seconds)
            print_phase(f"{LARGE}-point study", results["large"][str(clients)], "trips")
    ratio_to_floor = {
        clients: round(results["small"][clients]["per_s"] / results["floor"][clients]["per_s"], 2)
        for clients in results["floor"]
    }
    large_vs_small = {
        clients: round(results["large"][clients]["per_s"] / results["small"][clients]["per_s"], 2)
        for clients in results["floor"]
    }
    print(f"ratio to floor {ratio_to_floor}; {LARGE}-point / {SMALL}-point {large_vs_small}", flush=True)
    summary = {
        "round_trips": {"200_points": results["small"], "10000_points": results["large"]},
        "floor_pairs": results["floor"],
        "ratio_to_floor": ratio_to_floor,
        "large_vs_small": large_vs_small,
        "cpus": os.cpu_count(),
    }
    if args.generation_histories:
        histories = [int(h) for h in args.generation_histories.split(",")]
        summary["generation_seconds_for_10_points"] = generation_times(histories)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
