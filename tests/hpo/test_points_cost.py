"""What a pilot's checkout and report cost in queries (the hot path of bench/hpo_service.py), pinned."""

from __future__ import annotations

import pytest

from requests_app.models import Content
from requests_app.models.statuses import ContentStatus
from tests.hpo.study_helpers import stop_live_studies, submit, wait_checkout
from tests.hpo.test_points_ownership import worker_client


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def test_a_checkout_is_one_statement_after_authentication_and_the_study(api, user, django_assert_num_queries):
    # given a pilot whose token's last use was just written
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    wait_checkout(pilot, request_id, worker="p")

    # when / then: token, study, and one statement that finds, moves and leases the point
    with django_assert_num_queries(3):
        response = pilot.post(f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": "p"}, format="json")
    assert response.status_code == 200
    [point] = response.json()
    assert point["worker"] == "p"
    assert point["status"] == "Processing"
    assert Content.objects.get(collection__request_id=request_id, name=point["id"]).status == ContentStatus.PROCESSING


def test_a_report_costs_fourteen_queries_whatever_the_study_holds(api, user, django_assert_num_queries):
    # given a pilot holding a point
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    point = wait_checkout(pilot, request_id, worker="p")["id"]

    # when / then: token, study; BEGIN, point + collection + lease lock, lease delete, loss and path, then the
    # core's move (SAVEPOINT, move, counters, outbox row, RELEASE), reload, COMMIT; the conductor check
    with django_assert_num_queries(14):
        response = pilot.post(
            f"/api/v1/hpo/studies/{request_id}/points/{point}/report/", {"worker": "p", "loss": 0.25}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["loss"] == 0.25
    assert response.json()["worker"] == "p"
    assert response.json()["lease_expires_at"] is None
