"""HPO studies survive their own processes dying: a training worker killed while it holds a point,
a generator program killed or hung. Checked only through what users see: the REST API (study
summary with its generations, points list, request and its events)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.faults.conftest import ROOT, World, record_figures, wait_until
from tools.servers import command_line

SPACE = {"x": [0.0, 1.0], "n": {"type": "int", "low": 1, "high": 3}}
LEASE_SECONDS = 5


class Api:
    """The service's REST API with a staff token issued by the management command."""

    def __init__(self, world: World) -> None:
        self.url = f"http://127.0.0.1:{world.env['PORT']}"
        output = subprocess.run(
            [sys.executable, "manage.py", "issue_token", f"faults-{uuid.uuid4().hex[:6]}", "--staff"],
            cwd=ROOT,
            env=world.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.token = output.strip().splitlines()[-1]
        wait_until(self._up, timeout=120, what="the web server")

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v1/requests/", headers=self.headers, timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def submit_study(self, **metadata: Any) -> int:
        body = {
            "request_type": 4,
            "workload_id": 4242,
            "request_metadata": {"opt_space": SPACE, "seed": 1, **metadata},
        }
        response = requests.post(f"{self.url}/api/v1/requests/", json=body, headers=self.headers, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["request_id"]

    def study(self, request_id: int) -> dict[str, Any] | None:
        """The study summary; None until the clerk has created the study."""
        response = requests.get(f"{self.url}/api/v1/hpo/studies/{request_id}/", headers=self.headers, timeout=30)
        return response.json() if response.status_code == 200 else None

    def request_status(self, request_id: int) -> str:
        status = self.get(f"requests/{request_id}/")["status"]
        return status if isinstance(status, str) else str(status)


def start_training_worker(api: Api, study: int, name: str, *command: str) -> subprocess.Popen:
    """hpo/worker_cli.py in a session of its own (so kill -9 can take it and its command together)."""
    return subprocess.Popen(
        [sys.executable, "hpo/worker_cli.py", "--url", api.url, "--token", api.token, "--study", str(study)]
        + ["--worker", name, "--heartbeat", "1", "--idle", "0.5", "--", *command],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def held_point(api: Api, study: int, worker: str) -> dict[str, Any] | None:
    """The point ``worker`` holds; None while it holds none (or the clerk has not made the study yet)."""
    if api.study(study) is None:
        return None
    points = api.get(f"hpo/studies/{study}/points/?status=Processing&worker={worker}")
    return points[0] if points else None


@pytest.mark.timeout(600)
def test_a_point_held_by_a_killed_training_worker_is_reissued_and_the_study_finishes(world: World) -> None:
    # given a worker that took a point and trains forever
    api = Api(world)
    study = api.submit_study(method="random", max_points=6, num_points_per_generation=3, lease_seconds=LEASE_SECONDS)
    doomed = start_training_worker(api, study, "doomed", "sleep", "3600")
    wait_until(lambda: held_point(api, study, "doomed"), timeout=120, what="the doomed worker holding a point")
    point = held_point(api, study, "doomed")
    assert point is not None

    # when it is killed with everything it started
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    killed_at = time.monotonic()

    # then the point comes back after its lease, another worker evaluates it, and the study ends
    survivor = start_training_worker(api, study, "survivor", "echo", "0.25")
    try:
        reissued_at = wait_until(
            lambda: any(p["id"] == point["id"] for p in api.get(f"hpo/studies/{study}/points/?worker=survivor")),
            timeout=120,
            what="the held point reissued to the survivor",
        )
        finished_at = wait_until(lambda: (api.study(study) or {}).get("finished"), timeout=180, what="study finished")
    finally:
        survivor.terminate()
        survivor.wait(timeout=30)
    summary = api.study(study)
    evaluated = {p["id"]: p for p in api.get(f"hpo/studies/{study}/points/")}
    record_figures(
        {
            "fault": "hpo_training_worker_killed",
            "lease_s": LEASE_SECONDS,
            "point_reissued_after_s": round(reissued_at - killed_at, 1),
            "study_finished_after_s": round(finished_at - killed_at, 1),
        }
    )
    assert evaluated[point["id"]]["status"] == "Available"
    assert evaluated[point["id"]]["loss"] == 0.25
    assert summary["counts"].get("Available") == 6
    assert api.request_status(study) in ("Finished", "3")


def generator_processes(marker: str) -> list[int]:
    """Host pids of the generator program (found by a marker in its command line)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and any(marker in part for part in command_line(int(entry.name)))
    ]


def study_failed_with_reason(api: Api, study: int) -> str | None:
    """The reason recorded when the study failed (from its events), or None while it has not."""
    summary = api.study(study)
    if not summary or not summary["finished"]:
        return None
    events = api.get(f"requests/{study}/events/")
    rows = events["results"] if isinstance(events, dict) else events
    return " | ".join(row.get("reason", "") for row in rows if row.get("reason")) or "no reason recorded"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", ["generator_killed", "generator_hung"])
def test_a_generator_program_killed_or_hung_fails_the_study_with_the_reason(world: World, fault: str) -> None:
    # given a study whose generator program never returns on its own
    api = Api(world)
    marker = f"idds-fault-{uuid.uuid4().hex[:8]}"
    study = api.submit_study(
        executable="sh",
        arguments=f"-c 'sleep 3600; echo {marker}' %OUT",
        generator_timeout=10 if fault == "generator_hung" else 600,
        max_generator_failures=1,
        max_points=4,
    )
    started_at = wait_until(lambda: generator_processes(marker), timeout=120, what="the generator program running")

    # when it is killed (or left hanging past its time limit)
    if fault == "generator_killed":
        for pid in generator_processes(marker):
            # The marker is on several processes of one sandbox (bwrap, setpriv, sh); killing one can
            # end the others before the loop reaches them.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # then the generation fails with its reason, the study fails saying why, and nothing hangs on
    failed_at = wait_until(lambda: study_failed_with_reason(api, study), timeout=180, what="the study to fail")
    reason = study_failed_with_reason(api, study)
    summary = api.study(study)
    record_figures({"fault": f"hpo_{fault}", "study_failed_after_s": round(failed_at - started_at, 1)})
    assert summary["status"] in ("Failed", "5")
    (generation,) = summary["generations"]
    assert generation["status"].lower() == "failed"
    assert generation["error"]
    assert "generator" in reason
    # a hung program is stopped, not abandoned
    wait_until(lambda: not generator_processes(marker), timeout=30, what="the generator program gone")
