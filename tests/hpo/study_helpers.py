"""Helpers for the HPO study tests: submit a study over the API and drive it like workers do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from requests_app.models import Request
from requests_app.models.statuses import REQUEST_TERMINAL
from requests_app.services.requests import request_abort
from tests.conftest import wait_for

#: A study in these tests ends within this many seconds on a loaded 2-core machine, or the test fails.
STUDY_DEADLINE = 180.0

SPACE = {"x": [0.0, 1.0], "n": {"type": "int", "low": 1, "high": 3}}


def submit(api, **metadata: Any) -> int:
    body = {
        "request_type": 4,
        "workload_id": 777,
        "request_metadata": {"opt_space": SPACE, "method": "random", "seed": 1, **metadata},
    }
    response = api.post("/api/v1/requests/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["request_id"]


def checkout(api, request_id: int, worker: str = "w1", count: int = 1, **extra: Any) -> list[dict]:
    response = api.post(
        f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": worker, "count": count, **extra}, format="json"
    )
    if response.status_code == 404 and "has no hyperparameter" in response.json().get("error", ""):
        return []  # the clerk has not created the study yet
    assert response.status_code == 200, response.content
    return response.json()


def wait_checkout(api, request_id: int, worker: str = "w1", **extra: Any) -> dict:
    return wait_for(lambda: (checkout(api, request_id, worker, **extra) or [None])[0], what="a free point")


def report(api, request_id: int, point: str, loss: float, worker: str = "w1"):
    return api.post(
        f"/api/v1/hpo/studies/{request_id}/points/{point}/report/", {"worker": worker, "loss": loss}, format="json"
    )


def finished(request_id: int) -> Request | None:
    request = Request.objects.get(pk=request_id)
    return request if request.status in REQUEST_TERMINAL else None


def evaluate_until_finished(
    api, request_id: int, loss_of: Callable[[dict], float], *, count: int = 1, deadline: float = STUDY_DEADLINE
) -> int:
    """Check out and report points like a worker until the study ends; fail past ``deadline``. Returns reports."""
    reported = 0
    give_up = time.monotonic() + deadline
    while not finished(request_id):
        assert time.monotonic() < give_up, f"study {request_id} did not finish within {deadline:.0f} s"
        points = checkout(api, request_id, count=count)
        for point in points:
            assert report(api, request_id, point["id"], loss_of(point)).status_code == 200
            reported += 1
        if not points:
            time.sleep(0.05)  # nothing free yet: the next generation is running
    return reported


def stop_live_studies() -> None:
    """Abort what a test left running and wait until the worker has stopped touching it.

    The database is flushed after each transactional test; a worker still generating for a live study would
    hold locks the flush needs.
    """
    for request in Request.objects.exclude(status__in=REQUEST_TERMINAL):
        try:
            request_abort(request=request, actor="test teardown")
        except Exception:  # noqa: BLE001 — already stopping
            pass
    wait_for(lambda: not Request.objects.exclude(status__in=REQUEST_TERMINAL).exists(), what="studies stopped")
