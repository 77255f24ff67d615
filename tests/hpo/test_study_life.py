"""HPO studies carried by a real Celery worker on PostgreSQL + Redis, driven over the REST API."""

from __future__ import annotations

import json

import pytest

from hpo.models import PointLease
from hpo.sweeps import studies_sweep
from requests_app.models import Content, Event, Message, Processing, Request
from requests_app.models.statuses import CollectionRelationType, ContentStatus, ProcessingStatus, RequestStatus
from tests.conftest import wait_for
from tests.hpo.study_helpers import (
    checkout,
    evaluate_until_finished,
    finished,
    report,
    stop_live_studies,
    submit,
    wait_checkout,
)


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def test_it_runs_a_study_to_max_points_announcing_every_point(celery_worker, api):
    # given
    request_id = submit(api, max_points=6, num_points_per_generation=3, min_unevaluated_points=2)

    # when workers evaluate points until the study ends
    evaluated = evaluate_until_finished(api, request_id, lambda point: point["parameters"]["x"], count=2)

    # then
    request = Request.objects.get(pk=request_id)
    assert request.status == RequestStatus.FINISHED
    points = api.get(f"/api/v1/hpo/studies/{request_id}/points/").json()
    assert [p["id"] for p in points] == ["0", "1", "2", "3", "4", "5"]
    assert evaluated == 6  # every point reported once, none twice
    assert all(p["status"] == "Available" and p["provenance"]["generator"] == "random" for p in points)
    files = [
        f
        for m in Message.objects.filter(request_id=request_id, msg_type="file_hyperparameteropt")
        for f in m.body["files"]
    ]
    assert sorted(f["name"] for f in files if f["status"] == "New") == ["0", "1", "2", "3", "4", "5"]
    assert sorted(f["name"] for f in files if f["status"] == "Available") == ["0", "1", "2", "3", "4", "5"]
    assert all(f["scope"] == "hpo" for f in files)
    closing = Message.objects.get(request_id=request_id, msg_type="collection_hyperparameteropt")
    assert closing.body["collections"][0]["status"] == "Closed"
    summary = api.get(f"/api/v1/hpo/studies/{request_id}/").json()
    assert summary["best"]["loss"] == min(p["loss"] for p in points)
    assert summary["counts"] == {"Available": 6}


def test_it_finishes_when_the_generator_has_nothing_more(celery_worker, api):
    # given a grid over six points and a budget of fifty
    request_id = submit(
        api,
        method="grid",
        opt_space={"n": {"type": "int", "low": 1, "high": 3}, "c": {"type": "categorical", "choices": ["a", "b"]}},
        max_points=50,
    )

    # when
    evaluate_until_finished(api, request_id, lambda point: 1.0, count=3)

    # then
    assert Request.objects.get(pk=request_id).status == RequestStatus.FINISHED
    assert (
        Content.objects.filter(
            collection__request_id=request_id, collection__relation_type=CollectionRelationType.OUTPUT
        ).count()
        == 6
    )


def test_a_repeated_report_changes_nothing_and_a_different_loss_is_refused(celery_worker, api):
    # given
    request_id = submit(api, max_points=4)
    point = wait_checkout(api, request_id)

    # when
    first = report(api, request_id, point["id"], 0.5)
    again = report(api, request_id, point["id"], 0.5)
    other = report(api, request_id, point["id"], 0.7)

    # then
    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 409)
    assert "already has loss 0.5" in other.json()["error"]
    available = [
        f
        for m in Message.objects.filter(request_id=request_id, msg_type="file_hyperparameteropt")
        for f in m.body["files"]
        if f["status"] == "Available"
    ]
    assert [f["name"] for f in available] == [point["id"]]
    assert json.loads(available[0]["path"]) == [point["parameters"], 0.5]


def test_a_generator_that_keeps_failing_fails_the_study_with_its_reason(celery_worker, api):
    # given
    code = "import sys; sys.stderr.write('no GPU here'); sys.exit(2)"

    # when (the program runs in the sandbox, which sees the system's python3, not this test's files)
    request_id = submit(api, executable="python3", arguments=f'-c "{code}" %IN %OUT', max_generator_failures=2)

    # then
    request = wait_for(lambda: finished(request_id), what="study failed")
    assert request.status == RequestStatus.FAILED
    assert "exited with status 2" in str(request.errors)
    ending = Event.objects.get(entity="transform", new_status=RequestStatus.FAILED, request_id=request_id)
    assert "the generator failed 2 times in a row" in ending.reason
    assert Processing.objects.filter(request_id=request_id, status=ProcessingStatus.FAILED).count() == 2


def test_abort_ends_the_study_and_releases_leases(celery_worker, api):
    # given a point out with a worker
    request_id = submit(api, max_points=10)
    point = wait_checkout(api, request_id)

    # when
    assert api.post(f"/api/v1/requests/{request_id}/abort/").status_code == 200
    wait_for(lambda: Request.objects.get(pk=request_id).status == RequestStatus.CANCELLED, what="cancelled")
    studies_sweep()

    # then
    heartbeat = api.post(
        f"/api/v1/hpo/studies/{request_id}/points/{point['id']}/heartbeat/", {"worker": "w1"}, format="json"
    )
    assert heartbeat.status_code == 409
    assert not PointLease.objects.filter(transform__request_id=request_id).exists()
    assert checkout(api, request_id) == []
    assert (
        Content.objects.get(collection__request_id=request_id, collection__relation_type=1, name=point["id"]).status
        == ContentStatus.NEW
    )
