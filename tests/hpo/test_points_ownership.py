"""Ownership of HPO points: only the owner, staff or a worker token of the study work its points, each caller
only its own leases, and nothing of an ended study; every refusal leaves the state as it was (real worker)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from hpo.models import PointLease
from requests_app.auth.tokens import token_issue
from requests_app.models import ApiToken, Content, Request, Transform
from requests_app.models.statuses import REQUEST_TERMINAL, ContentStatus, RequestStatus
from tests.conftest import wait_for
from tests.hpo.study_helpers import checkout, finished, report, stop_live_studies, submit, wait_checkout

VERBS = ("heartbeat", "report", "fail", "release", "invalidate")


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def worker_client(user, request_id: int) -> tuple[APIClient, ApiToken]:
    """A client holding a worker token of study ``request_id`` (issued to ``user``)."""
    issued = token_issue(user=user, study=Request.objects.get(pk=request_id), name="pilot")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    return client, issued.token


def verb(client, request_id: int, point: str, name: str, worker: str = "w1", **extra: Any):
    body = {"worker": worker, "loss": -1e6, "message": "x", "reason": "x", **extra}
    return client.post(f"/api/v1/hpo/studies/{request_id}/points/{point}/{name}/", body, format="json")


def snapshot(request_id: int) -> dict:
    """Every point of the study and every lease, as stored: what a refused call must leave alone."""
    points = Content.objects.filter(collection__request_id=request_id).order_by("id")
    leases = PointLease.objects.filter(transform__request_id=request_id).order_by("content_id")
    return {
        "points": list(points.values("name", "status", "retries", "details", "path")),
        "leases": list(leases.values("content_id", "worker", "user_id", "worker_token_id", "expires_at", "heartbeats")),
        "request": Request.objects.values("status").get(pk=request_id),
    }


def test_another_user_is_refused_every_verb_and_changes_nothing(api, other_api):
    # given the owner holds a point
    request_id = submit(api, max_points=4, num_points_per_generation=4)
    point = wait_checkout(api, request_id, worker="w1")["id"]
    wait_for(lambda: Content.objects.filter(collection__request_id=request_id, status=ContentStatus.NEW).exists())
    before = snapshot(request_id)

    # when another user tries every verb, naming the owner's worker
    answers = {name: verb(other_api, request_id, point, name) for name in VERBS}
    answers["checkout"] = other_api.post(
        f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": "w1", "count": 4}, format="json"
    )

    # then each is 403 with the JSON error shape, and no point or lease moved
    assert {name: r.status_code for name, r in answers.items()} == {name: 403 for name in answers}
    assert all("owner" in r.json()["error"] for r in answers.values())
    assert snapshot(request_id) == before
    # reads stay open
    assert other_api.get(f"/api/v1/hpo/studies/{request_id}/points/").status_code == 200


def test_a_worker_token_of_the_study_works_its_points_and_records_itself(api, user):
    # given
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, token = worker_client(user, request_id)

    # when the pilot checks out, heartbeats and reports
    point = wait_checkout(pilot, request_id, worker="pilot-1")
    lease = PointLease.objects.get(content__name=point["id"], transform__request_id=request_id)
    beat = verb(pilot, request_id, point["id"], "heartbeat", worker="pilot-1")
    reported = report(pilot, request_id, point["id"], 0.5, worker="pilot-1")

    # then it worked, as the pilot's principal, and the pilot may read its study
    assert (lease.user_id, lease.worker_token_id) == (user.pk, token.pk)
    assert beat.status_code == 200
    assert reported.status_code == 200
    assert reported.json()["loss"] == 0.5
    assert pilot.get(f"/api/v1/hpo/studies/{request_id}/").status_code == 200
    assert pilot.get(f"/api/v1/hpo/studies/{request_id}/points/").status_code == 200


def test_a_worker_token_of_another_study_is_refused_everywhere_in_this_one(api, user):
    # given two studies of the same owner, the owner holding a point of the first
    first = submit(api, max_points=3, num_points_per_generation=3)
    second = submit(api, max_points=3, num_points_per_generation=3)
    point = wait_checkout(api, first, worker="w1")["id"]
    stranger, _ = worker_client(user, second)
    before = snapshot(first)

    # when the second study's pilot turns to the first
    answers = [verb(stranger, first, point, name) for name in VERBS]
    answers.append(stranger.post(f"/api/v1/hpo/studies/{first}/checkout/", {"worker": "w1"}, format="json"))
    answers.append(stranger.get(f"/api/v1/hpo/studies/{first}/"))
    answers.append(stranger.get(f"/api/v1/hpo/studies/{first}/points/"))

    # then
    assert [r.status_code for r in answers] == [403] * len(answers)
    assert f"belongs to study {second}" in answers[0].json()["error"]
    assert snapshot(first) == before


def test_fail_and_release_of_someone_elses_lease_are_refused_and_the_lease_stays(api, user, staff_api):
    # given a pilot of the study holds a point under worker name "w1"
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    other_pilot, _ = worker_client(user, request_id)
    point = wait_checkout(pilot, request_id, worker="w1")["id"]
    before = snapshot(request_id)

    # when the owner's own token, another pilot and staff name the same worker
    answers = [
        verb(client, request_id, point, name, worker="w1")
        for client in (api, other_pilot, staff_api)
        for name in ("fail", "release", "heartbeat", "report")
    ]

    # then each is a conflict, and the pilot's lease and the point are untouched
    assert [r.status_code for r in answers] == [409] * len(answers)
    assert snapshot(request_id) == before
    assert verb(pilot, request_id, point, "release", worker="w1").status_code == 200


def test_reports_on_a_cancelled_study_are_refused_and_change_nothing(api):
    # given the owner holds a point of a study that is then aborted
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    point = wait_checkout(api, request_id, worker="w1")["id"]
    assert api.post(f"/api/v1/requests/{request_id}/abort/").status_code == 200
    wait_for(lambda: finished(request_id), what="cancelled")
    wait_for(
        lambda: not Transform.objects.filter(request_id=request_id).exclude(status__in=REQUEST_TERMINAL).exists(),
        what="the study's transform ended",
    )
    before = snapshot(request_id)

    # when
    answers = [verb(api, request_id, point, name, worker="w1") for name in ("report", "heartbeat", "fail", "release")]
    late_checkout = checkout(api, request_id, worker="w1")

    # then
    assert before["request"]["status"] == RequestStatus.CANCELLED
    assert [r.status_code for r in answers] == [409] * len(answers)
    assert "ended" in answers[0].json()["error"]
    assert late_checkout == []
    assert snapshot(request_id) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=³", "limit"), ("limit=٣", "limit"), ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=x", "limit"),
     ("status=Evaluated", "status"), ("worker=a%00b", "worker")],
)  # fmt: skip
def test_bad_points_queries_are_400_naming_the_parameter(api, query, field):
    # given
    request_id = submit(api, max_points=2)
    wait_checkout(api, request_id)

    # when
    response = api.get(f"/api/v1/hpo/studies/{request_id}/points/?{query}")

    # then
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_bad_worker_names_and_metrics_are_400_and_change_nothing(api):
    # given
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    point = wait_checkout(api, request_id, worker="w1")["id"]
    before = snapshot(request_id)

    # when
    answers = {
        "worker": verb(api, request_id, point, "heartbeat", worker="w\x001"),
        "worker ": api.post(f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": "w" * 256}, format="json"),
        "metrics": verb(api, request_id, point, "report", loss=1.0, metrics={"note": "a\x00b"}),
        "metrics ": verb(api, request_id, point, "report", loss=1.0, metrics={"deep": [[[[[[[[[[1]]]]]]]]]]}),
    }
    too_big = api.get(f"/api/v1/hpo/studies/{2**64}/points/")

    # then
    for field, response in answers.items():
        assert response.status_code == 400, field
        # The field itself, or a path inside it (the JSON reader names where a NUL sits).
        assert any(name.split(".")[0] == field.strip() for name in response.json()["errors"]), field
    assert too_big.status_code == 404
    assert snapshot(request_id) == before


def test_a_pilots_heartbeat_costs_one_query_to_authenticate_and_one_to_find_the_study(
    api, user, django_assert_num_queries
):
    # given a pilot holding a point (its token's last use was just written)
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    pilot, _ = worker_client(user, request_id)
    point = wait_checkout(pilot, request_id, worker="p")["id"]

    # when / then: token + study, then the service's BEGIN, point and lease lock (one query), update, reload,
    # COMMIT, answer
    with django_assert_num_queries(8):
        assert verb(pilot, request_id, point, "heartbeat", worker="p").status_code == 200
