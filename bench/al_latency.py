"""Active-learning latency: from a task's results reported to the next parameters available and announced.

Starts the service (gunicorn 2x4, a Celery worker with 2 processes, beat) on a database of its own, uploads a
trivial decision program (``{"x": x + 1}``) through the uploads endpoint, submits one loop, and plays the workload
system for ``--steps`` steps: POST the results of the current parameter set, then poll
``GET .../parameters/?status=new`` every ``--poll-ms`` until the next one is there. Measured per step:

* ``rest``: the POST sent -> the next parameters seen over REST (includes the sandboxed decision run);
* ``announced``: the POST sent -> the ``file_activelearning`` message of those parameters delivered, i.e. acked by
  the sink (Redis Streams: the XADD reply; ``Message.delivered_at``).

Also measured: the bare cost of one bubblewrap run of ``python3 -c pass`` (``--bwrap-runs`` runs), which every
decision pays. The last line printed is one JSON object with ``steps``, ``p50_ms``, ``p99_ms`` (of ``rest``) and
the rest of the figures.

    .venv/bin/python bench/al_latency.py [--steps 200]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench._harness import Service, bench_env, issue_token, percentile, reset_database  # noqa: E402

DECISION = "import json, sys\nd = json.load(open(sys.argv[1]))\n" + (
    "json.dump({'x': d['results'][-1]['parameters']['x'] + 1}, open(sys.argv[2], 'w'))\n"
)


def tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("decide.py")
        info.size = len(DECISION)
        tar.addfile(info, io.BytesIO(DECISION.encode()))
    return buffer.getvalue()


def bwrap_cost(runs: int) -> list[float]:
    """Milliseconds of one sandbox run of ``python3 -c pass`` (the fixed cost of every decision)."""
    from requests_app import sandbox

    owner = None
    times = []
    runtime = sandbox.runtime_for(owner)
    for _ in range(runs):
        with sandbox.work_directory() as workdir:
            started = time.perf_counter()
            sandbox.run(sandbox.Program(argv=["python3", "-c", "pass"], workdir=workdir), runtime=runtime)
            times.append((time.perf_counter() - started) * 1000)
    return times


def run_loop(url: str, token: str, steps: int, poll: float) -> tuple[list[float], dict[str, float], int]:
    """Drive one loop; returns the REST latencies (ms), the POST send time of each next parameter set by its
    content name (epoch seconds), and the request id."""
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    upload = http.post(f"{url}/api/v1/activelearning/uploads/", files={"file": ("decide.tar.gz", tarball())})
    upload.raise_for_status()
    metadata = {
        "executable": "python3 decide.py",
        "arguments": "%IN %OUT",
        "sandbox": upload.json()["name"],
        "initial_parameters": {"x": 0},
        "max_iterations": steps + 1,
        "timeout": 30,
    }
    created = http.post(
        f"{url}/api/v1/requests/", json={"request_type": 3, "workload_id": 1, "request_metadata": metadata}
    )
    created.raise_for_status()
    request_id = created.json()["request_id"]
    base = f"{url}/api/v1/activelearning/loops/{request_id}"
    current = wait_new(http, base, set(), poll, timeout=120)
    seen = {current["name"]}
    rest_ms: list[float] = []
    sent_at: dict[str, float] = {}
    for step in range(steps):
        sent = time.time()
        body = {"name": current["name"], "results": {"y": step}, "metrics": {"y": step}}
        http.post(f"{base}/results/", json=body).raise_for_status()
        current = wait_new(http, base, seen, poll, timeout=60)
        rest_ms.append((time.time() - sent) * 1000)
        sent_at[current["name"]] = sent
        seen.add(current["name"])
        if step % 50 == 49:
            print(f"  {step + 1} steps, p50 so far {percentile(rest_ms, 0.5):.0f} ms", flush=True)
    return rest_ms, sent_at, request_id


def wait_new(http: requests.Session, base: str, seen: set[str], poll: float, *, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"{base}/parameters/", params={"status": "new"})
        if response.status_code == 200:
            fresh = [t for t in response.json() if t["name"] not in seen]
            if fresh:
                return fresh[0]
        time.sleep(poll)
    sys.exit(f"no new parameters within {timeout:.0f} s; see var/bench/worker.log")


def announced_ms(request_id: int, sent_at: dict[str, float]) -> list[float]:
    """Report sent -> the message announcing the next parameters acked by the sink, per step (ms)."""
    from requests_app.models import Message

    deadline = time.monotonic() + 60
    latencies: list[float] = []
    while time.monotonic() < deadline:
        latencies = []
        for body, delivered in Message.objects.filter(
            request_id=request_id, msg_type="file_activelearning", delivered_at__isnull=False
        ).values_list("body", "delivered_at"):
            for file in body["files"]:
                if file["name"] in sent_at:
                    latencies.append((delivered.timestamp() - sent_at[file["name"]]) * 1000)
        if len(latencies) >= len(sent_at):
            break
        time.sleep(0.5)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=5.0, help="how often the client looks for new parameters")
    parser.add_argument("--bwrap-runs", type=int, default=30)
    args = parser.parse_args()
    var = ROOT / "var" / "bench"
    env = bench_env(
        "al",
        13,
        IDDS_MESSAGE_SINKS="redis",
        IDDS_STREAM_REDIS_URL="redis://127.0.0.1:6379/13",
        IDDS_SANDBOX_UPLOAD_DIR=str(var / "al-uploads"),
        IDDS_SANDBOX_WORK_DIR=str(var / "al-work"),
    )
    reset_database(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    import django

    django.setup()
    bwrap = bwrap_cost(args.bwrap_runs)
    print(f"bubblewrap run of python3 -c pass: p50 {percentile(bwrap, 0.5):.0f} ms", flush=True)
    token = issue_token(env)
    with Service(env) as service:
        started = time.time()
        rest, sent_at, request_id = run_loop(service.url, token, args.steps, args.poll_ms / 1000)
        announced = announced_ms(request_id, sent_at)
        elapsed = time.time() - started
    result = {
        "steps": len(rest),
        "p50_ms": round(percentile(rest, 0.5), 1),
        "p99_ms": round(percentile(rest, 0.99), 1),
        "announced_steps": len(announced),
        "announced_p50_ms": round(percentile(announced, 0.5), 1),
        "announced_p99_ms": round(percentile(announced, 0.99), 1),
        "bwrap_python_p50_ms": round(percentile(bwrap, 0.5), 1),
        "bwrap_python_p99_ms": round(percentile(bwrap, 0.99), 1),
        "poll_ms": args.poll_ms,
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
