"""HPO service benchmark: worker round trips over REST, and generation time against history size.

1. ``--clients`` concurrent workers loop over checkout + report (two HTTP calls = one round trip) against
   gunicorn (2 processes x 4 threads) on PostgreSQL, with a Celery worker generating points, for ``--seconds``.
   Reported: round trips per second, p50/p99 latency of a round trip.
2. Generation time of 10 points after histories of 100, 500 and 1000 evaluated points, per built-in generator
   (in process, one core; nevergrad includes starting its own interpreter).

    .venv/bin/python bench/hpo_service.py [--clients 8] [--seconds 20] [--histories 100,500,1000]

The last line printed is one JSON object.
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


def round_trips(url: str, token: str, clients: int, seconds: float) -> dict[str, float]:
    """Submit a large random study and hammer checkout + report from ``clients`` threads."""
    headers = {"Authorization": f"Token {token}"}
    body = {
        "request_type": 4,
        "request_metadata": {
            "opt_space": SPACE,
            "method": "random",
            "max_points": 100_000,
            # Big generations keep free points in stock, so the figure is the API's, not the generator's.
            "num_points_per_generation": 2000,
            "min_unevaluated_points": 1000,
            "seed": 1,
        },
    }
    study = requests.post(f"{url}/api/v1/requests/", json=body, headers=headers, timeout=30).json()["request_id"]
    base = f"{url}/api/v1/hpo/studies/{study}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        summary = requests.get(f"{base}/", headers=headers, timeout=30)
        if summary.status_code == 200 and summary.json()["counts"].get("New", 0) >= 1000:
            break
        time.sleep(0.5)
    latencies: list[float] = []
    empty = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    # The pilots carry a worker token of the study, as they would in production (not the owner's token).
    issued = requests.post(f"{base}/worker-tokens/", json={"name": "bench"}, headers=headers, timeout=30)
    issued.raise_for_status()
    pilot_headers = {"Authorization": f"Token {issued.json()['key']}"}

    def client(index: int) -> None:
        session = requests.Session()
        session.headers.update(pilot_headers)
        worker = f"bench-{index}"
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            points = session.post(f"{base}/checkout/", json={"worker": worker}, timeout=30).json()
            if not points:
                with lock:
                    empty[0] += 1
                continue
            point = points[0]
            response = session.post(
                f"{base}/points/{point['id']}/report/",
                json={"worker": worker, "loss": point["parameters"]["dropout"]},
                timeout=30,
            )
            response.raise_for_status()
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "round_trips": len(latencies),
        "round_trips_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "empty_checkouts": empty[0],
    }


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


def main() -> None:
    """Run both parts and print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--histories", default="100,500,1000")
    args = parser.parse_args()
    env = bench_env("hpo", 13)
    reset_database(env)
    token = issue_token(env)
    with Service(
        env, web=False, beat=False, concurrency=1, queues="clerk,transformer,carrier,rollup,hpo,hpo_generate,conductor"
    ) as service:
        web, url = start_web(env, service.log_dir)
        service.children.append(web)
        api = round_trips(url, token, args.clients, args.seconds)
    print(f"REST: {api['round_trips_per_s']} checkout+report round trips/s with {api['clients']} clients, "
          f"p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms", flush=True)  # fmt: skip
    generation = generation_times([int(h) for h in args.histories.split(",")])
    print(json.dumps({"rest": api, "generation_seconds_for_10_points": generation}))


if __name__ == "__main__":
    main()
