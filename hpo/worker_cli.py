"""HPO worker: check out a point, run the training command, report the loss; repeat until the study ends.

Needs only ``requests`` (no Django), so it runs on any machine that can reach the service::

    python worker_cli.py --url http://host:8000 --token TOKEN --study 17 --worker gpu-node-3 -- \\
        python train.py --lr {lr} --layers {layers} --params %POINT_FILE

TOKEN should be a worker token of the study, not the owner's own token: it can only work that study's points.
The owner gets one with ``POST /api/v1/hpo/studies/17/worker-tokens/`` (the key is in that answer only) or
``manage.py issue_worker_token 17 --expires-days 7``, and revokes it with ``DELETE .../worker-tokens/<id>/``.
Leases belong to the token that took them: another token naming the same ``--worker`` cannot touch them.

The point reaches the training command three ways: ``{name}`` placeholders in the arguments, the JSON file
named by ``%POINT_FILE`` (also in the environment as ``HPO_POINT_FILE``) and the environment variable
``HPO_POINT`` (JSON). The loss is read from ``--loss-file`` (JSON: a number or ``{"loss": x, ...}``; other keys
are reported as metrics) when given, otherwise from the last line of stdout. While the command runs a
heartbeat keeps the lease; on SIGTERM or Ctrl-C the command is stopped and the point is given back
(released unevaluated, so it is reissued at once); the loop ends when the study is finished.

Early stopping: a training command that prints ``HPO_INTERMEDIATE <step> <value>`` lines (say, after each epoch;
flush stdout, or run Python with ``PYTHONUNBUFFERED=1``, which this CLI sets) has each one reported at once. When
the study's early-stopping rule answers ``stop``, the command is terminated and nothing more is reported: the
service already recorded the point as pruned, its loss the value just reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

#: Seconds between heartbeats unless --heartbeat says otherwise (leases default to 600 s).
HEARTBEAT_SECONDS = 30.0
#: (connect, read) timeouts of every HTTP call.
TIMEOUT = (5, 30)
#: First word of a stdout line carrying an intermediate value: ``HPO_INTERMEDIATE <step> <value>``.
INTERMEDIATE_PREFIX = "HPO_INTERMEDIATE"


class StudyEnded(Exception):
    """The study finished, failed or was aborted: nothing more to do."""


@dataclass
class Client:
    """The few REST calls a worker makes."""

    url: str
    study: int
    worker: str
    token: str | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        url = f"{self.url.rstrip('/')}/api/v1/hpo/studies/{self.study}/{path}"
        return requests.request(method, url, json=body, headers=headers, timeout=TIMEOUT)

    def summary(self) -> dict[str, Any]:
        response = self._call("GET", "")
        response.raise_for_status()
        return response.json()

    def checkout(self) -> dict[str, Any] | None:
        response = self._call("POST", "checkout/", {"worker": self.worker, "count": 1})
        if response.status_code == 404:
            return None  # not planned yet
        response.raise_for_status()
        points = response.json()
        return points[0] if points else None

    def heartbeat(self, point: str) -> bool:
        """False when the lease is lost (the study ended or the point moved on)."""
        return self._call("POST", f"points/{point}/heartbeat/", {"worker": self.worker}).status_code == 200

    def report(self, point: str, loss: float, metrics: dict[str, Any]) -> requests.Response:
        return self._call("POST", f"points/{point}/report/", {"worker": self.worker, "loss": loss, "metrics": metrics})

    def intermediate(self, point: str, step: int, value: float) -> dict[str, Any]:
        """The rule's answer: ``{"decision": "continue" | "stop", "reason": ...}``; stop when the lease is lost."""
        response = self._call(
            "POST", f"points/{point}/intermediate/", {"worker": self.worker, "step": step, "value": value}
        )
        if response.status_code == 409:
            return {"decision": "stop", "reason": response.json().get("error", "the point is no longer ours")}
        response.raise_for_status()
        return response.json()

    def release(self, point: str) -> None:
        self._call("POST", f"points/{point}/release/", {"worker": self.worker})

    def fail(self, point: str, message: str) -> None:
        self._call("POST", f"points/{point}/fail/", {"worker": self.worker, "message": message[-2000:]})


class Heartbeat(threading.Thread):
    """Keeps a lease alive while the training runs."""

    def __init__(self, client: Client, point: str, every: float) -> None:
        super().__init__(daemon=True)
        self.client, self.point, self.every = client, point, every
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                if not self.client.heartbeat(self.point):
                    self.lost = True
                    return
            except requests.RequestException:
                continue  # a network blip: the lease outlives a few missed beats


def build_command(template: list[str], point: dict[str, Any], point_file: str) -> list[str]:
    """Replace ``{name}`` placeholders and ``%POINT_FILE`` in each argument."""
    values = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in point.items()}
    out = []
    for arg in template:
        arg = arg.replace("%POINT_FILE", point_file)
        try:
            arg = arg.format(**values)
        except (KeyError, IndexError, ValueError):
            pass  # braces that are not placeholders stay as they are
        out.append(arg)
    return out


def parse_intermediate(line: str) -> tuple[int, float] | None:
    """(step, value) of an ``HPO_INTERMEDIATE <step> <value>`` line, None for any other line."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != INTERMEDIATE_PREFIX:
        return None
    try:
        return int(parts[1]), float(parts[2])
    except ValueError:
        return None


def read_loss(stdout: str, loss_file: str | None) -> tuple[float, dict[str, Any]]:
    """The loss and metrics from the loss file, or the last non-empty stdout line (a number or JSON)."""
    if loss_file:
        with open(loss_file) as handle:
            text = handle.read()
    else:
        lines = [line for line in stdout.splitlines() if line.strip()]
        if not lines:
            raise ValueError("the training command printed nothing; print the loss as the last line")
        text = lines[-1]
    value = json.loads(text)
    if isinstance(value, dict):
        metrics = {k: v for k, v in value.items() if k != "loss"}
        return float(value["loss"]), metrics
    return float(value), {}


class Worker:
    """The check-out / train / report loop."""

    def __init__(
        self, client: Client, command: list[str], *, loss_file: str | None, heartbeat: float, idle: float
    ) -> None:
        self.client, self.command, self.loss_file = client, command, loss_file
        self.heartbeat_every, self.idle = heartbeat, idle
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.done = 0

    def handle_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM / Ctrl-C: stop the training; the loop gives the point back."""
        self.stopping = True
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def run(self, max_points: int | None = None) -> int:
        """Evaluate points until the study ends, a signal arrives, or ``max_points`` were done."""
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)
        while not self.stopping and (max_points is None or self.done < max_points):
            point = self.client.checkout()
            if point is None:
                summary = self.client.summary()
                if summary.get("finished"):
                    print(f"study {self.client.study} is {summary['status']}; best {summary.get('best')}", flush=True)
                    break
                time.sleep(self.idle)
                continue
            self.evaluate(point)
        return self.done

    def follow(self, name: str) -> tuple[str, str, str | None]:
        """Read the command's output to its end, reporting intermediate values as they come.

        Returns (stdout, stderr, why it was stopped early or None). stderr is drained by a thread so a chatty
        command never blocks on a full pipe.
        """
        process = self.process
        errors: list[str] = []
        drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
        drain.start()
        lines: list[str] = []
        pruned: str | None = None
        for line in process.stdout:
            lines.append(line)
            report = parse_intermediate(line) if pruned is None else None
            if report is None:
                continue
            try:
                answer = self.client.intermediate(name, *report)
            except requests.RequestException:
                continue  # a network blip: train on, the next value is reported again
            if answer.get("decision") == "stop":
                pruned = f"step {report[0]}, value {report[1]:.6g}: {answer.get('reason', '')}"
                process.terminate()
        process.wait()
        drain.join()
        return "".join(lines), "".join(errors), pruned

    def evaluate(self, point: dict[str, Any]) -> None:
        """Run the command on one point and report its loss (or its failure)."""
        name, params = point["id"], point["parameters"]
        with tempfile.TemporaryDirectory(prefix="hpo-point-") as tmp:
            point_file = os.path.join(tmp, "point.json")
            with open(point_file, "w") as handle:
                json.dump(params, handle)
            env = {
                **os.environ,
                "HPO_POINT": json.dumps(params),
                "HPO_POINT_FILE": point_file,
                "HPO_POINT_ID": name,
                # Intermediate values must reach this CLI as they are printed, not when the command ends.
                "PYTHONUNBUFFERED": "1",
            }
            beat = Heartbeat(self.client, name, self.heartbeat_every)
            beat.start()
            started = time.monotonic()
            try:
                self.process = subprocess.Popen(
                    build_command(self.command, params, point_file),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                if self.stopping:
                    # The signal came between checkout and start: do not train at all.
                    self.process.terminate()
                stdout, stderr, pruned = self.follow(name)
            finally:
                beat.stop.set()
            seconds = time.monotonic() - started
            if pruned is not None and not self.stopping:
                self.done += 1
                print(f"point {name}: stopped early after {seconds:.1f}s: {pruned} [{self.done} done]", flush=True)
                return
            if self.stopping:
                self.client.release(name)
                print(f"point {name}: given back", flush=True)
                return
            if self.process.returncode != 0:
                self.client.fail(name, f"exit status {self.process.returncode}: {stderr[-1500:]}")
                print(f"point {name}: command failed ({self.process.returncode})", flush=True)
                return
            try:
                loss, metrics = read_loss(stdout, self.loss_file and self.loss_file.replace("%POINT_DIR", tmp))
            except (ValueError, KeyError, OSError) as exc:
                self.client.fail(name, f"no loss: {exc}")
                print(f"point {name}: no loss ({exc})", flush=True)
                return
        response = self.client.report(name, loss, {**metrics, "seconds": round(seconds, 3)})
        self.done += 1
        note = " (late: lease had moved on)" if beat.lost else ""
        print(
            f"point {name}: loss {loss:.6g} in {seconds:.1f}s -> HTTP {response.status_code}{note} [{self.done} done]",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the loop."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("IDDS_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("IDDS_TOKEN"))
    parser.add_argument("--study", type=int, required=True, help="the request id of the HPO study")
    parser.add_argument("--worker", default=f"{socket.gethostname()}:{os.getpid()}")
    parser.add_argument("--loss-file", help="read the loss from this JSON file (%%POINT_DIR = the point's temp dir)")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_SECONDS)
    parser.add_argument("--idle", type=float, default=1.0, help="seconds to wait when no point is free")
    parser.add_argument("--max-points", type=int, help="stop after this many evaluations")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- training command and arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the training command after --")
    if len(command) == 1 and " " in command[0]:
        command = shlex.split(command[0])
    client = Client(url=args.url, study=args.study, worker=args.worker, token=args.token)
    worker = Worker(client, command, loss_file=args.loss_file, heartbeat=args.heartbeat, idle=args.idle)
    done = worker.run(max_points=args.max_points)
    print(f"{args.worker}: evaluated {done} point(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
