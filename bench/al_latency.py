"""Active-learning latency: from a task's results reported to the next parameters available and announced.

Starts the service (gunicorn 2x4, a Celery worker with 2 processes, beat) on a database of its own, uploads a
trivial decision program (``{"x": x + 1}``) through the uploads endpoint, submits one loop, and plays the workload
system for ``--steps`` steps: POST the results of the current parameter set, then poll
``GET .../parameters/?status=new`` every ``--poll-ms`` until the next one is there. Measured per step:

* ``rest``: the POST sent -> the next parameters seen over REST (includes the sandboxed decision run);
* ``announced``: the POST sent -> the ``file_activelearning`` message of those parameters delivered, i.e. acked by
  the sink (Redis Streams: the XADD reply; ``Message.delivered_at``).

Each step is also broken down by the timestamps the service records anyway (``Trial.reported_at``, ``Step.created_at``
/ ``started_at`` / ``finished_at`` / ``duration_seconds``, ``Message.created_at`` / ``delivered_at``):

* ``report``: POST sent -> results recorded under the loop lock (HTTP, auth, the report transaction);
* ``queued``: -> the decision step row written (stop rules, the step's input document);
* ``pickup``: -> the step claimed by a worker (report commit, Celery hand-off, broker, pickup);
* ``prepare``: claim -> program started (loading the request; the claim's own update);
* ``program``: the sandboxed decision run (working directory, unpack, bwrap, interpreter, decision, output);
* ``apply``: program done -> the next parameters and their message written (apply transaction);
* ``deliver``: message written -> acked by the sink (apply commit, conductor wake-up, delivery);
* ``seen``: message written -> the client sees the parameters over REST (apply commit, the client's poll).

Also measured, in this process: one sandbox run of ``python3 -c pass`` (``--bwrap-runs`` runs), and the phases of
``program_run`` for the benchmark's decision program (``--program-runs`` runs). The last line printed is one JSON
object with ``steps``, ``p50_ms``, ``p99_ms`` (of ``rest``), the load average and the rest of the figures.

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


def program_phases(runs: int) -> dict[str, float]:
    """p50 milliseconds of each phase of ``program_run`` for the benchmark's decision program, in this process."""
    from activelearning import program
    from requests_app import sandbox

    upload = Path(os.environ["IDDS_SANDBOX_UPLOAD_DIR"]) / "al" / "bench-phases.tar.gz"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_bytes(tarball())
    spec = program.ProgramSpec(
        executable="python3 decide.py",
        arguments="%IN %OUT",
        output_json=None,
        sandbox="al/bench-phases.tar.gz",
        timeout=30,
        memory_mb=1024,
        owner=None,
    )
    document = {"results": [{"parameters": {"x": 1}}]}
    timings: dict[str, list[float]] = {}

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)

        return wrapper

    originals = {name: getattr(sandbox, name) for name in ("runtime_for", "unpack_upload", "run", "read_output")}
    checksum = program.program_checksum
    try:
        for name, function in originals.items():
            setattr(sandbox, name, timed(name, function))
        program.program_checksum = timed("program_checksum", checksum)
        for _ in range(runs):
            started = time.perf_counter()
            run = program.program_run(spec, document, iteration=1)
            timings.setdefault("total", []).append((time.perf_counter() - started) * 1000)
            if not run.ok:
                sys.exit(f"the benchmark's decision program failed: {run.error} {run.stderr_tail}")
    finally:
        for name, function in originals.items():
            setattr(sandbox, name, function)
        program.program_checksum = checksum
    phases = {name: round(percentile(values, 0.5), 1) for name, values in timings.items()}
    phases["other"] = round(phases["total"] - sum(v for k, v in phases.items() if k != "total"), 1)
    return phases


def run_loop(url: str, token: str, steps: int, poll: float) -> tuple[list[dict], int]:
    """Drive one loop; returns per step the reported and the next parameter set's names, the POST send time and
    the time the next set was seen (epoch seconds), and the request id."""
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
    records: list[dict] = []
    for step in range(steps):
        sent = time.time()
        body = {"name": current["name"], "results": {"y": step}, "metrics": {"y": step}}
        http.post(f"{base}/results/", json=body).raise_for_status()
        reported = current["name"]
        current = wait_new(http, base, seen, poll, timeout=60)
        records.append({"reported": reported, "next": current["name"], "sent": sent, "seen": time.time()})
        seen.add(current["name"])
        if step % 50 == 49:
            so_far = [(r["seen"] - r["sent"]) * 1000 for r in records]
            print(f"  {step + 1} steps, p50 so far {percentile(so_far, 0.5):.0f} ms", flush=True)
    return records, request_id


#: Milliseconds of every GET the client polled with: the polling itself loads the 2-core machine it measures.
POLL_GETS: list[float] = []


def wait_new(http: requests.Session, base: str, seen: set[str], poll: float, *, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = http.get(f"{base}/parameters/", params={"status": "new"})
        POLL_GETS.append((time.perf_counter() - started) * 1000)
        if response.status_code == 200:
            fresh = [t for t in response.json() if t["name"] not in seen]
            if fresh:
                return fresh[0]
        time.sleep(poll)
    sys.exit(f"no new parameters within {timeout:.0f} s; see var/bench/worker.log")


def messages_by_name(request_id: int, names: set[str]) -> dict[str, tuple[float, float | None]]:
    """(written, delivered) epoch seconds of the message announcing each parameter set, once all are delivered
    (or after 60 s)."""
    from requests_app.models import Message

    deadline = time.monotonic() + 60
    found: dict[str, tuple[float, float | None]] = {}
    while time.monotonic() < deadline:
        found = {}
        for body, created, delivered in Message.objects.filter(
            request_id=request_id, msg_type="file_activelearning"
        ).values_list("body", "created_at", "delivered_at"):
            for file in body["files"]:
                if file["name"] in names:
                    found[file["name"]] = (created.timestamp(), delivered.timestamp() if delivered else None)
        if len(found) >= len(names) and all(d is not None for _, d in found.values()):
            break
        time.sleep(0.5)
    return found


STAGES = ("report", "queued", "pickup", "prepare", "program", "apply", "deliver", "seen")


def breakdown(request_id: int, records: list[dict]) -> tuple[dict[str, list[float]], list[float]]:
    """Per-stage milliseconds of every step (see the module docstring), and the announced latencies."""
    from activelearning.models import Trial

    trials = {t.name: t for t in Trial.objects.filter(loop__request_id=request_id).select_related("consumed_by")}
    messages = messages_by_name(request_id, {r["next"] for r in records})
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    announced: list[float] = []
    for record in records:
        trial, message = trials[record["reported"]], messages.get(record["next"])
        step = trial.consumed_by
        if step is None or message is None or step.started_at is None or step.finished_at is None:
            continue
        written, delivered = message
        program = (step.duration_seconds or 0.0) * 1000
        claimed_to_finished = (step.finished_at - step.started_at).total_seconds() * 1000
        values = {
            "report": (trial.reported_at.timestamp() - record["sent"]) * 1000,
            "queued": (step.created_at - trial.reported_at).total_seconds() * 1000,
            "pickup": (step.started_at - step.created_at).total_seconds() * 1000,
            "prepare": claimed_to_finished - program,
            "program": program,
            "apply": (written - step.finished_at.timestamp()) * 1000,
            "deliver": ((delivered or written) - written) * 1000,
            "seen": (record["seen"] - written) * 1000,
        }
        for name, value in values.items():
            stages[name].append(value)
        if delivered is not None:
            announced.append((delivered - record["sent"]) * 1000)
    return stages, announced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=5.0, help="how often the client looks for new parameters")
    parser.add_argument("--bwrap-runs", type=int, default=30)
    parser.add_argument("--program-runs", type=int, default=30)
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
    load_before = os.getloadavg()
    bwrap = bwrap_cost(args.bwrap_runs)
    print(f"bubblewrap run of python3 -c pass: p50 {percentile(bwrap, 0.5):.0f} ms", flush=True)
    phases = program_phases(args.program_runs)
    print(f"program_run phases (p50 ms): {json.dumps(phases)}", flush=True)
    token = issue_token(env)
    with Service(env) as service:
        started = time.time()
        records, request_id = run_loop(service.url, token, args.steps, args.poll_ms / 1000)
        stages, announced = breakdown(request_id, records)
        elapsed = time.time() - started
    load_after = os.getloadavg()
    rest = [(r["seen"] - r["sent"]) * 1000 for r in records]
    print("stage        p50 ms   p99 ms")
    for name in STAGES:
        print(f"{name:10} {percentile(stages[name], 0.5):8.1f} {percentile(stages[name], 0.99):8.1f}")
    result = {
        "steps": len(rest),
        "p50_ms": round(percentile(rest, 0.5), 1),
        "p99_ms": round(percentile(rest, 0.99), 1),
        "announced_steps": len(announced),
        "announced_p50_ms": round(percentile(announced, 0.5), 1),
        "announced_p99_ms": round(percentile(announced, 0.99), 1),
        "bwrap_python_p50_ms": round(percentile(bwrap, 0.5), 1),
        "bwrap_python_p99_ms": round(percentile(bwrap, 0.99), 1),
        "stages_p50_ms": {name: round(percentile(stages[name], 0.5), 1) for name in STAGES},
        "stages_p99_ms": {name: round(percentile(stages[name], 0.99), 1) for name in STAGES},
        "program_phases_p50_ms": phases,
        "poll_ms": args.poll_ms,
        "poll_gets_per_step": round(len(POLL_GETS) / max(1, len(rest)), 1),
        "poll_get_p50_ms": round(percentile(POLL_GETS, 0.5), 1),
        "seconds": round(elapsed, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
