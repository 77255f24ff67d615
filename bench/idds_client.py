"""The deployed iDDS client (idds-client 2.6.21) against /idds/: call latency and HPO round trips.

The service runs as in production (gunicorn with 2 workers on PostgreSQL, a Celery worker); the client runs in
separate processes, as PanDA and pilots do.

1. One client process: p50/p95 of ``ping``, ``add_request`` (a stage-in in PanDA's form), ``get_requests``
   (by id) and ``get_hyperparameters`` (one point by id), ``--calls`` each.
2. HPO round trips, ``get_hyperparameters(id)`` + ``update_hyperparameter(id, loss)``, on studies of 200, 2,000
   and 10,000 points, with 1 and 8 client processes for ``--seconds`` each. Clients cycle over the same
   ``--ids`` points of every study (default 200, the smallest study's size; never the last two points, so no
   new generation starts and the study keeps its size): each cell does the same work — a first report of
   each point, then reports repeating the same loss, which the service accepts as a no-op, as the original
   does — so the cells differ only in the size of the study around those points. (Cycling over every point
   of the study instead makes a 10,000-point cell write a new loss on nearly every report while a 200-point
   cell repeats after its first 200: it then compares writes with no-ops, not study sizes.)

    .venv/bin/python bench/idds_client.py [--calls 200] [--seconds 20] [--sizes 200,2000,10000] [--clients 1,8]\
        [--ids 200]

The last line printed is one JSON object. The original server's figures, measured the same way (issue #14):
ping 3.0 ms, add_request 16 ms, get_requests 8.9 ms; round trips at 200 points 52/s (p50 18 ms) with 1 client
and 93/s (p50 83 ms, p99 146 ms) with 8; at 2,000 points 13.7/s with 8.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import Service, bench_env, issue_token, percentile, reset_database  # noqa: E402

REDIS_DB = 15
ORIGINAL = {
    "ping_p50_ms": 3.0,
    "add_request_p50_ms": 16.0,
    "get_requests_p50_ms": 8.9,
    "round_trips_per_s": {"200x1": 52, "200x8": 93, "2000x8": 13.7},
}
DATASET = ("sim", "bench.idds_client")
SPACE = {"lr": [0.0001, 0.1], "dropout": [0.0, 0.5]}


def make_client(url: str, key: str):
    """The client as PanDA builds it (imported here: each client process loads it on its own)."""
    from idds.client.client import Client  # noqa: PLC0415 - the client is loaded in the client processes only

    return Client(host=f"{url}/idds", auth={"auth_type": "oidc", "oidc_token": key, "vo": "atlas"}, timeout=60)


def stagein_request(workload_id: int) -> dict:
    return {
        "scope": DATASET[0],
        "name": DATASET[1],
        "requester": "panda",
        "request_type": 2,
        "transform_tag": 2,
        "status": 0,
        "priority": 0,
        "lifetime": 30,
        "request_metadata": {"workload_id": workload_id, "dest_rse": "SIM_DATADISK"},
    }


def hpo_request(points: int, workload_id: int) -> dict:
    # One generation makes every point; a new one would start only when fewer than one point awaits a loss.
    return {
        "requester": "panda",
        "request_type": 4,
        "transform_tag": 4,
        "status": 0,
        "priority": 0,
        "lifetime": 30,
        "request_metadata": {
            "workload_id": workload_id,
            "is_pseudo_input": True,
            "method": "random",
            "opt_space": SPACE,
            "max_points": 100_000,
            "num_points_per_generation": points,
            "min_unevaluated_points": 1,
        },
    }


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def single_client(url: str, key: str, calls: int, study_id: int, result: multiprocessing.Queue) -> None:
    """Phase 1, in its own process: latency of each call type, one after the other."""
    client = make_client(url, key)
    request_ids: list[int] = []
    latencies: dict[str, list[float]] = {"ping": [], "add_request": [], "get_requests": [], "get_hyperparameters": []}
    for _ in range(calls):
        latencies["ping"].append(timed(client.ping))
    for index in range(calls):
        start = time.perf_counter()
        request_ids.append(client.add_request(**stagein_request(900_000 + index)))
        latencies["add_request"].append((time.perf_counter() - start) * 1000)
    for index in range(calls):
        rid = request_ids[index % len(request_ids)]
        latencies["get_requests"].append(timed(lambda rid=rid: client.get_requests(request_id=rid)))
    for index in range(calls):
        point = str(index % 100)
        latencies["get_hyperparameters"].append(
            timed(lambda point=point: client.get_hyperparameters(None, study_id, id=point))
        )
    result.put(latencies)


def round_trip_client(
    url: str, key: str, study_id: int, ids: list[str], seconds: float, start_at: float, result: multiprocessing.Queue
) -> None:
    """Phase 2, in its own process: get a point by id, report its loss, for ``seconds`` from ``start_at``."""
    client = make_client(url, key)
    latencies: list[float] = []
    errors = 0
    index = 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    while time.time() < deadline:
        point_id = ids[index % len(ids)]
        index += 1
        begin = time.perf_counter()
        try:
            (point,) = client.get_hyperparameters(None, study_id, id=point_id)
            loss = point["parameters"]["lr"] + point["parameters"]["dropout"]
            client.update_hyperparameter(None, study_id, point_id, loss)
        except Exception:  # counted and reported; a benchmark must finish
            errors += 1
            continue
        latencies.append((time.perf_counter() - begin) * 1000)
    result.put({"latencies": latencies, "errors": errors})


def wait_for_points(url: str, key: str, study_id: int, points: int, timeout: float = 300) -> None:
    client = make_client(url, key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get_hyperparameters(None, study_id) or []
        if len(found) >= points:
            return
        time.sleep(0.5)
    sys.exit(f"study {study_id} did not reach {points} points in {timeout}s")


def round_trips(url: str, key: str, study_id: int, points: int, clients: int, seconds: float, ids: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    usable = [str(n) for n in range(min(ids, points - 2))]
    start_at = time.time() + 3.0  # every process started and its client built before the clock runs
    processes = [
        context.Process(
            target=round_trip_client, args=(url, key, study_id, usable[n::clients], seconds, start_at, queue)
        )
        for n in range(clients)
    ]
    load_before = round(os.getloadavg()[0], 2)
    for process in processes:
        process.start()
    results = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    latencies = [value for r in results for value in r["latencies"]]
    return {
        "points": points,
        "clients": clients,
        "ids_cycled": len(usable),
        "round_trips": len(latencies),
        "per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "errors": sum(r["errors"] for r in results),
        # The 1-minute load average of the machine around the run: figures on a shared machine move with it.
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sizes", default="200,2000,10000")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--ids", type=int, default=200, help="points each cell cycles over, the same in every study")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]

    env = bench_env("idds_client", REDIS_DB, IDDS_TAPE_TIME_SCALE="1.0")
    reset_database(env)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "idds_site.settings"
    import django  # noqa: PLC0415 - the benchmark's own database must be in the environment first

    django.setup()
    from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create  # noqa: PLC0415

    # One dataset on a slow simulated tape: every add_request joins its one live transform.
    catalogue_create([DatasetSpec(*DATASET, 10, 10 * 2_000_000_000)], config=TapeConfig(), seed=7)
    key = issue_token(env)

    with Service(env, beat=False) as service:
        client = make_client(service.url, key)
        studies = {size: client.add_request(**hpo_request(size, 700_000 + size)) for size in sizes}
        for size, study_id in studies.items():
            wait_for_points(service.url, key, study_id, size)

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        single = context.Process(target=single_client, args=(service.url, key, args.calls, studies[sizes[0]], queue))
        single.start()
        latencies = queue.get(timeout=600)
        single.join()
        calls = {
            name: {"p50_ms": round(percentile(values, 0.5), 2), "p95_ms": round(percentile(values, 0.95), 2)}
            for name, values in latencies.items()
        }
        print(json.dumps({"single_client": calls}))

        runs = []
        for size in sizes:
            for clients in client_counts:
                run = round_trips(service.url, key, studies[size], size, clients, args.seconds, args.ids)
                print(json.dumps(run))
                runs.append(run)

    print(json.dumps({"single_client": calls, "round_trips": runs, "original": ORIGINAL}))


if __name__ == "__main__":
    main()
