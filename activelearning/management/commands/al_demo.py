"""``manage.py al_demo``: a closed active-learning loop against a simulated workload.

The workload is a small Monte Carlo: for a cut ``threshold`` it draws ``--events`` standard-normal events and
reports the efficiency (the fraction above the cut) with its statistical error. The decision program, uploaded as
a sandbox tarball and run in the sandbox at every step, moves the cut by a Newton step towards the wanted
efficiency and returns ``{}`` once the measured efficiency is within tolerance. Progress is printed per iteration.
The command submits the request like any client and plays the workload system through the same services the
REST API uses (read the new parameters, run the task, report its results).
"""

from __future__ import annotations

import io
import math
import random
import tarfile
import time
from typing import Any

from celery.contrib.testing.worker import start_worker
from django.core.management.base import BaseCommand, CommandError

from activelearning import selectors, services
from activelearning.models import Loop
from activelearning.uploads import upload_store
from idds_site.celery import app
from requests_app import sandbox
from requests_app.auth.service_user import command_owner
from requests_app.models import Request
from requests_app.models.statuses import REQUEST_TERMINAL
from requests_app.services.requests import request_create

# A Newton step on the efficiency curve of a unit Gaussian (d(eff)/d(cut) = -pdf(cut)), at most 0.5 long.
DECISION = """
import json, math, sys
doc = json.load(open(sys.argv[1]))
target, tolerance = float(sys.argv[3]), float(sys.argv[4])
last = doc["results"][-1]
cut, eff = last["parameters"]["threshold"], last["metrics"]["efficiency"]
if abs(eff - target) <= tolerance:
    json.dump({}, open(sys.argv[2], "w"))
else:
    slope = max(math.exp(-cut * cut / 2) / math.sqrt(2 * math.pi), 0.02)
    step = max(-0.5, min(0.5, (eff - target) / slope))
    json.dump({"threshold": round(cut + step, 4)}, open(sys.argv[2], "w"))
"""
#: Longest the demo waits for the next parameters.
STEP_TIMEOUT = 60.0


def simulate(threshold: float, events: int, rng: random.Random) -> dict[str, float]:
    """The simulated task: the efficiency of the cut on ``events`` Gaussian events, and its binomial error."""
    passed = sum(1 for _ in range(events) if rng.gauss(0.0, 1.0) > threshold)
    efficiency = passed / events
    return {"efficiency": efficiency, "error": math.sqrt(max(efficiency * (1 - efficiency), 1e-12) / events)}


class _Program:
    """The decision program as an uploaded tarball (stored through the uploads service, checksummed)."""

    @staticmethod
    def upload(owner) -> str:
        data = DECISION.encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("decide.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        return upload_store(stream=buffer, original_name="al_demo.tar.gz", owner=owner).name


class Command(BaseCommand):
    """Run the closed loop and print each iteration."""

    help = "Active learning against a simulated Monte Carlo: move a cut until its efficiency meets a target."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--target", type=float, default=0.25, help="wanted efficiency")
        parser.add_argument("--tolerance", type=float, default=0.005)
        parser.add_argument("--start", type=float, default=2.0, help="initial cut")
        parser.add_argument("--events", type=int, default=20_000, help="Monte Carlo events per task")
        parser.add_argument("--max-iterations", type=int, default=20)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--no-celery", action="store_true", help="Celery workers already run elsewhere")
        parser.add_argument("--owner", default="", help="username owning the request (default: the service user)")

    def handle(self, *args, **options) -> str:
        owner = command_owner(options["owner"])
        if problem := sandbox.sandbox_problem(owner):
            # The rest of the demo stays useful on a machine without a sandbox: say why and skip this part.
            self.stdout.write(self.style.WARNING(f"skipped: the decision program cannot run here: {problem}"))
            return ""
        request = request_create(
            request_type=3,
            owner=owner,
            requester="al_demo",
            metadata={
                "executable": "python3 decide.py",
                "arguments": f"%IN %OUT {options['target']} {options['tolerance']}",
                "sandbox": _Program.upload(owner),
                "initial_parameters": {"threshold": options["start"]},
                "max_iterations": options["max_iterations"],
                "timeout": 30,
            },
        )
        self.stdout.write(
            f"loop {request.pk}: find the cut with efficiency {options['target']} +- {options['tolerance']}, "
            f"{options['events']} events per task"
        )
        if options["no_celery"]:
            return self._run(request.pk, options)
        with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
            return self._run(request.pk, options)

    def _run(self, request_id: int, options: dict[str, Any]) -> str:
        rng = random.Random(options["seed"])
        done: set[str] = set()
        give_up = time.monotonic() + STEP_TIMEOUT
        while Request.objects.get(pk=request_id).status not in REQUEST_TERMINAL:
            trials = self._new_trials(request_id, done)
            if not trials:
                if time.monotonic() > give_up:
                    raise CommandError(f"loop {request_id}: no new parameters within {STEP_TIMEOUT:.0f} s")
                time.sleep(0.05)
                continue
            for trial in trials:
                started = time.perf_counter()
                metrics = simulate(trial.parameters["threshold"], options["events"], rng)
                services.trial_report(transform=trial.loop.transform, name=trial.name, results=metrics, metrics=metrics)
                done.add(trial.name)
                self.stdout.write(
                    f"  iteration {trial.iteration:2d}: cut {trial.parameters['threshold']:+.4f} -> efficiency "
                    f"{metrics['efficiency']:.4f} +- {metrics['error']:.4f} ({time.perf_counter() - started:.2f} s)"
                )
            give_up = time.monotonic() + STEP_TIMEOUT
        loop = Loop.objects.get(request_id=request_id)
        request = Request.objects.get(pk=request_id)
        summary = (
            f"loop {request_id} {request.get_status_display()} after {loop.iteration} iteration(s): {loop.stop_reason}"
        )
        self.stdout.write(self.style.SUCCESS(summary))
        return ""

    def _new_trials(self, request_id: int, done: set[str]) -> list:
        try:
            loop = Loop.objects.get(request_id=request_id)
        except Loop.DoesNotExist:
            return []
        trials = selectors.loop_trials(loop=loop, status="new").select_related("loop__transform")
        return [t for t in trials if t.name not in done]
