"""What a pilot's checkout and report cost in queries (the hot path of bench/hpo_service.py), pinned."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hpo import services
from hpo.models import PointLease
from requests_app.auth.principals import Principal
from requests_app.models import Content, Transform
from requests_app.models.statuses import ContentStatus
from tests.hpo.study_helpers import stop_live_studies, submit, wait_checkout
from tests.hpo.test_points_ownership import worker_client


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def statements(captured: CaptureQueriesContext) -> list[str]:
    """The statements a call ran, without the PREPAREs a connection sends once (requests_app.services.prepared)."""
    return [query["sql"] for query in captured.captured_queries if not query["sql"].startswith("PREPARE ")]


def test_a_checkout_is_two_statements_the_caller_with_its_study_and_the_lease(api, user):
    # given a pilot whose token's last use was just written
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    wait_checkout(pilot, request_id, worker="p")

    # when / then: the token with its user and the study in one query (hpo/api/lean.py), and one statement that
    # finds, moves and leases the point, both prepared
    with CaptureQueriesContext(connection) as captured:
        response = pilot.post(f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": "p"}, format="json")
    assert [sql.split("(")[0] for sql in statements(captured)] == [
        "EXECUTE idds_token_and_study",
        "EXECUTE idds_hpo_checkout",
    ]
    assert response.status_code == 200
    [point] = response.json()
    assert point["worker"] == "p"
    assert point["status"] == "Processing"
    assert Content.objects.get(collection__request_id=request_id, name=point["id"]).status == ContentStatus.PROCESSING


def test_a_new_database_connection_prepares_the_statements_again(api, user):
    # given a pilot whose calls prepared the statements on this connection, which is then closed (as
    # CONN_MAX_AGE, a failed health check or a restarted server would)
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    wait_checkout(pilot, request_id, worker="p")
    connection.close()

    # when
    with CaptureQueriesContext(connection) as captured:
        response = pilot.post(f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": "p"}, format="json")

    # then the new connection was sent each statement once before calling it, and the call worked
    sent = [query["sql"].split(" AS ")[0].split("(")[0] for query in captured.captured_queries]
    assert sent == [
        "PREPARE idds_token_and_study",
        "EXECUTE idds_token_and_study",
        "PREPARE idds_hpo_checkout",
        "EXECUTE idds_hpo_checkout",
    ]
    assert response.status_code == 200
    assert response.json()[0]["status"] == "Processing"


def test_with_prepared_statements_off_the_same_sql_runs_as_text(api, user, settings):
    # given
    settings.IDDS_DB_PREPARED_STATEMENTS = False
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    wait_checkout(pilot, request_id, worker="p")

    # when
    with CaptureQueriesContext(connection) as captured:
        response = pilot.post(f"/api/v1/hpo/studies/{request_id}/checkout/", {"worker": "p"}, format="json")

    # then nothing is prepared or executed by name, and the answer is the same
    assert len(captured.captured_queries) == 2
    assert not any(query["sql"].startswith(("PREPARE", "EXECUTE")) for query in captured.captured_queries)
    assert response.status_code == 200
    assert response.json()[0]["worker"] == "p"


def test_a_report_costs_three_queries_whatever_the_study_holds(api, user, django_assert_num_queries, settings):
    # given a pilot holding a point, and every message waking the conductor (no wake window)
    settings.IDDS_CONDUCTOR_WAKE_SECONDS = 0
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    pilot, _ = worker_client(user, request_id)
    point = wait_checkout(pilot, request_id, worker="p")["id"]

    # when / then: the caller with the study; one statement that locks the point, drops the lease, records the
    # loss and writes the message (hpo/report_sql.py); the conductor check after it committed
    with CaptureQueriesContext(connection) as captured:
        response = pilot.post(
            f"/api/v1/hpo/studies/{request_id}/points/{point}/report/", {"worker": "p", "loss": 0.25}, format="json"
        )
    run = statements(captured)
    assert [sql.split("(")[0] for sql in run[:2]] == ["EXECUTE idds_token_and_study", "EXECUTE idds_hpo_report"]
    assert len(run) == 3
    assert "requests_app_agentlease" in run[2]
    assert response.status_code == 200
    assert response.json()["loss"] == 0.25
    assert response.json()["worker"] == "p"
    assert response.json()["lease_expires_at"] is None
    # and the same loss again is answered by the same statement, changing nothing
    with django_assert_num_queries(2):
        again = pilot.post(
            f"/api/v1/hpo/studies/{request_id}/points/{point}/report/", {"worker": "p", "loss": 0.25}, format="json"
        )
    assert again.status_code == 200
    assert again.json() == response.json()


def test_the_orm_checkout_of_other_databases_leases_like_the_single_statement(api, user):
    # given a study with free points (the ORM path serves SQLite, the embedded default; it is DB-agnostic)
    request_id = submit(api, max_points=3, num_points_per_generation=3)
    wait_checkout(api, request_id, worker="first")
    transform = Transform.objects.select_related("request").get(request_id=request_id)
    now = timezone.now()

    # when
    with transaction.atomic():
        points = services._lease_free_points_orm(
            transform, principal=Principal(user_id=user.pk), worker="orm", count=5, now=now, expires_at=now
        )

    # then the two other points are leased to the caller, oldest first, and say so
    assert [p.name for p in points] == ["1", "2"]
    assert all(p.status == ContentStatus.PROCESSING and p.hpo_lease.worker == "orm" for p in points)
    leased = PointLease.objects.filter(transform=transform, worker="orm").values_list("content__name", flat=True)
    assert sorted(leased) == ["1", "2"]
