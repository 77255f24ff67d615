"""Helpers for the active-learning tests: decision programs as uploaded tarballs, loops submitted over REST."""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from requests_app.models import Message, Request
from requests_app.models.statuses import MESSAGE_UNDELIVERED, REQUEST_TERMINAL
from requests_app.services.requests import request_abort
from tests.conftest import wait_for

# Moves x by +1 per iteration from the results' x; stops ({}) once the reported y reaches 3.
STEPPER = """
import json, sys
doc = json.load(open(sys.argv[1]))
last = doc["results"][-1] if doc["results"] else doc["late"][-1]
x = last["parameters"]["x"] + 1
json.dump({} if last["metrics"].get("y", 0) >= 3 else {"x": x}, open(sys.argv[2], "w"))
"""


def tarball(directory: Path, files: dict[str, str], name: str = "prog.tar.gz") -> str:
    """A tarball of ``files`` in ``directory`` (the upload dir); returns its name."""
    path = directory / name
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return name


@pytest.fixture(autouse=True)
def sandbox_dirs(settings, tmp_path):
    settings.IDDS_SANDBOX_WORK_DIR = str(tmp_path / "work")
    settings.IDDS_SANDBOX_UPLOAD_DIR = str(tmp_path / "uploads")
    settings.IDDS_SANDBOX_RUNTIME = "bubblewrap"
    settings.IDDS_SANDBOX_BINARY = ""
    settings.IDDS_SANDBOX_ALLOW_HOST = False
    (tmp_path / "uploads").mkdir()
    return tmp_path / "uploads"


@pytest.fixture
def program(sandbox_dirs):
    """Upload a decision program (the text of decide.py); returns the metadata that runs it."""

    def make(code: str = STEPPER, **extra: Any) -> dict[str, Any]:
        name = tarball(sandbox_dirs, {"decide.py": code, **extra.pop("files", {})}, name=f"p{len(code)}.tar.gz")
        return {"executable": "python3 decide.py", "arguments": "%IN %OUT", "sandbox": name, "timeout": 20, **extra}

    return make


def submit(api, metadata: dict[str, Any], *, expect: int = 201) -> Any:
    body = {"request_type": 3, "workload_id": 4242, "request_metadata": metadata}
    response = api.post("/api/v1/requests/", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()["request_id"] if expect == 201 else response.json()


def loop_url(request_id: int, tail: str = "") -> str:
    return f"/api/v1/activelearning/loops/{request_id}/{tail}"


def new_parameters(api, request_id: int) -> list[dict]:
    response = api.get(loop_url(request_id, "parameters/"), {"status": "new"})
    if response.status_code == 404:
        return []  # the clerk has not started the loop yet
    assert response.status_code == 200, response.content
    return response.json()


def report(api, request_id: int, name: str, results: Any, metrics: dict | None = None):
    body = {"name": name, "results": results, "metrics": metrics or {}}
    return api.post(loop_url(request_id, "results/"), body, format="json")


def finished(request_id: int) -> Request | None:
    request = Request.objects.get(pk=request_id)
    return request if request.status in REQUEST_TERMINAL else None


def run_workload(api, request_id: int, evaluate, *, deadline: float = 120.0) -> int:
    """Play the workload system: run every new parameter set with ``evaluate`` and report, until the end."""
    reported: set[str] = set()
    while True:
        if finished(request_id):
            return len(reported)
        todo = [t for t in new_parameters(api, request_id) if t["name"] not in reported]
        for trial in todo:
            metrics = evaluate(trial["parameters"])
            response = report(api, request_id, trial["name"], metrics, metrics)
            assert response.status_code in (200, 409), response.content
            reported.add(trial["name"])
        if not todo:
            wait_for(
                lambda: (
                    finished(request_id) or [t for t in new_parameters(api, request_id) if t["name"] not in reported]
                ),
                timeout=deadline,
                interval=0.05,
                what=f"new parameters or the end of loop {request_id}",
            )


@pytest.fixture(autouse=True)
def stop_live_loops(request):
    """Abort what a test left running, so no worker writes while the database is flushed."""
    yield
    if "celery_worker" not in request.fixturenames:
        return
    for live in Request.objects.exclude(status__in=REQUEST_TERMINAL):
        try:
            request_abort(request=live)
        except Exception:  # noqa: BLE001, S110 - already ending
            pass
    wait_for(lambda: not Request.objects.exclude(status__in=REQUEST_TERMINAL).exists(), timeout=60, what="loops ended")
    # The conductor still delivers the loops' last messages after they end: a write of its racing the
    # flush's TRUNCATE deadlocked once. Wait until the outbox is delivered.
    wait_for(
        lambda: not Message.objects.filter(status__in=MESSAGE_UNDELIVERED).exists(), timeout=60, what="outbox delivered"
    )
