"""The worker CLI against a live server (real HTTP, real Celery worker)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from requests_app.auth.tokens import token_issue
from requests_app.models import Content, Request
from requests_app.models.statuses import ContentStatus, RequestStatus
from tests.conftest import wait_for
from tests.hpo.study_helpers import stop_live_studies, submit

CLI = Path(__file__).resolve().parents[2] / "hpo" / "worker_cli.py"


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def cli(live_server, user, request_id: int, *command: str, worker: str = "cli-1") -> list[str]:
    # A pilot carries a worker token of its study, not its owner's own token.
    key = token_issue(user=user, study=Request.objects.get(pk=request_id), name=worker).key
    return [
        sys.executable, str(CLI), "--url", live_server.url, "--token", key, "--study", str(request_id),
        "--worker", worker, "--idle", "0.2", "--heartbeat", "0.5", "--", *command,
    ]  # fmt: skip


def test_it_evaluates_points_until_the_study_is_finished(live_server, api, user, tmp_path):
    # given a training script that reads the point three ways
    train = tmp_path / "train.py"
    train.write_text(
        "import json, os, sys\n"
        "point = json.loads(os.environ['HPO_POINT'])\n"
        "assert json.load(open(sys.argv[2])) == point\n"
        "assert float(sys.argv[1]) == point['x']\n"
        "print('epoch 1 ...')\n"
        "print(json.dumps({'loss': (point['x'] - 0.3) ** 2, 'accuracy': 0.9}))\n"
    )
    request_id = submit(api, max_points=5, num_points_per_generation=3)

    # when
    done = subprocess.run(
        cli(live_server, user, request_id, sys.executable, str(train), "{x}", "%POINT_FILE"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # then
    assert done.returncode == 0, done.stderr
    assert "evaluated 5 point(s)" in done.stdout
    assert Request.objects.get(pk=request_id).status == RequestStatus.FINISHED
    points = Content.objects.filter(collection__request_id=request_id, collection__relation_type=1)
    assert all(p.status == ContentStatus.AVAILABLE and p.details["metrics"]["accuracy"] == 0.9 for p in points)
    assert all(p.details["loss"] == pytest.approx((p.details["parameters"]["x"] - 0.3) ** 2) for p in points)


def test_it_gives_the_point_back_on_sigterm(live_server, api, user):
    # given a worker busy on a long training
    request_id = submit(api, max_points=5)
    process = subprocess.Popen(
        cli(live_server, user, request_id, sys.executable, "-c", "import time; time.sleep(60)"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    busy = wait_for(
        lambda: Content.objects.filter(collection__request_id=request_id, status=ContentStatus.PROCESSING).first(),
        what="a point in training",
    )

    # when
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)

    # then
    assert process.returncode == 0
    assert f"point {busy.name}: given back" in stdout
    busy.refresh_from_db()
    assert busy.status == ContentStatus.NEW
    assert busy.retries == 0


def test_a_training_loop_reporting_every_epoch_is_stopped_early_by_the_median_rule(live_server, api, user, tmp_path):
    # given a training loop that reports a value after every epoch and logs the epochs it ran
    train = tmp_path / "train.py"
    train.write_text(
        "import os, sys, time\n"
        "x = float(sys.argv[1])\n"
        "for epoch in range(1, 6):\n"
        "    with open(os.path.join(sys.argv[2], os.environ['HPO_POINT_ID']), 'a') as log:\n"
        "        log.write(f'{epoch}\\n')\n"
        "    print(f'HPO_INTERMEDIATE {epoch} {(x - 0.3) ** 2 + 1 / epoch}')\n"
        "    time.sleep(2)\n"
        "print((x - 0.3) ** 2 + 0.2)\n"
    )
    # and a study whose points come in a known order: a good one first, then a clearly worse one
    request_id = submit(
        api,
        max_points=2,
        initial_points=[{"x": 0.3, "n": 1}, {"x": 0.9, "n": 1}],
        early_stopping={"rule": "median", "min_points": 1},
    )

    # when one worker evaluates them
    done = subprocess.run(
        cli(live_server, user, request_id, sys.executable, str(train), "{x}", str(tmp_path)),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    # then the good point trained to the end and the bad one was stopped after its first epoch
    assert done.returncode == 0, done.stderr
    assert "point 1: stopped early" in done.stdout
    assert Request.objects.get(pk=request_id).status == RequestStatus.FINISHED
    points = {p.name: p for p in Content.objects.filter(collection__request_id=request_id, collection__relation_type=1)}
    assert points["0"].details["loss"] == pytest.approx(0.2)
    assert not points["0"].details.get("pruned")
    assert points["1"].status == ContentStatus.AVAILABLE
    assert points["1"].details["pruned"] is True
    assert points["1"].details["loss"] == pytest.approx(0.36 + 1.0)
    assert (tmp_path / "0").read_text().split() == ["1", "2", "3", "4", "5"]
    assert len((tmp_path / "1").read_text().split()) < 5
