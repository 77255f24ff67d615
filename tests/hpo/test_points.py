"""Point leases, late and failed reports, invalidation and time-outs, on a live study (real Celery worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hpo.generation import study_history
from hpo.models import PointLease
from hpo.sweeps import studies_sweep as sweep
from requests_app.models import Content, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus, RequestStatus
from tests.conftest import wait_for
from tests.hpo.study_helpers import checkout, finished, report, stop_live_studies, submit, wait_checkout


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def point_row(request_id: int, name: str) -> Content:
    return Content.objects.get(
        collection__request_id=request_id, collection__relation_type=CollectionRelationType.OUTPUT, name=name
    )


def expire_lease(request_id: int, name: str) -> None:
    """Make a point's lease due now, as if its worker had gone quiet (no sleeping against the clock)."""
    due = timezone.now() - timedelta(seconds=1)
    assert PointLease.objects.filter(content__name=name, transform__request_id=request_id).update(expires_at=due) == 1


def post(api, request_id: int, point: str, verb: str, **body):
    return api.post(f"/api/v1/hpo/studies/{request_id}/points/{point}/{verb}/", body, format="json")


def test_an_expired_lease_returns_the_point_and_its_retries_run_out(api):
    # given one retry
    request_id = submit(api, max_points=3, num_points_per_generation=3, point_retries=1)
    first = wait_checkout(api, request_id, worker="dies-1")

    # when the lease expires twice
    expire_lease(request_id, first["id"])
    sweep()
    after_one = point_row(request_id, first["id"])
    again = [p for p in checkout(api, request_id, worker="dies-2", count=3) if p["id"] == first["id"]]
    expire_lease(request_id, first["id"])
    sweep()

    # then it was reissued once, then failed for good
    assert after_one.status == ContentStatus.NEW
    assert after_one.retries == 1
    assert again
    assert again[0]["worker"] == "dies-2"
    final = point_row(request_id, first["id"])
    assert final.status == ContentStatus.FINAL_FAILED
    assert [f["reason"] for f in final.details["failures"]] == ["lease expired (dies-1)", "lease expired (dies-2)"]
    assert not PointLease.objects.filter(content=final).exists()


def test_heartbeats_keep_the_lease(api):
    # given a 60 s lease
    request_id = submit(api, max_points=3, lease_seconds=60)
    point = wait_checkout(api, request_id, worker="alive")
    lease = PointLease.objects.filter(content__name=point["id"], transform__request_id=request_id)

    # when each heartbeat comes just before the lease runs out
    for _ in range(3):
        lease.update(expires_at=timezone.now() + timedelta(seconds=0.5))
        beat_at = timezone.now()
        assert post(api, request_id, point["id"], "heartbeat", worker="alive").status_code == 200
        # then the lease runs a full period from the heartbeat, and the sweep leaves it alone
        assert lease.get().expires_at >= beat_at + timedelta(seconds=59)
        sweep()

    # then
    assert lease.get().worker == "alive"
    assert lease.get().heartbeats == 3
    assert point_row(request_id, point["id"]).status == ContentStatus.PROCESSING


def test_a_late_report_after_the_lease_moved_on_is_recorded(api):
    # given the point went to another worker after the first one's lease expired
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    point = wait_checkout(api, request_id, worker="slow")
    expire_lease(request_id, point["id"])
    sweep()
    wait_for(
        lambda: any(p["id"] == point["id"] for p in checkout(api, request_id, worker="fast", count=2)), what="reissue"
    )

    # when the slow worker reports after all
    late = report(api, request_id, point["id"], 0.25, worker="slow")
    beat = post(api, request_id, point["id"], "heartbeat", worker="fast")

    # then the loss counts, and the other worker learns it can stop
    assert late.status_code == 200
    assert late.json()["loss"] == 0.25
    row = point_row(request_id, point["id"])
    assert row.status == ContentStatus.AVAILABLE
    assert row.details["late"] is True
    assert row.details["reported_by"] == "slow"
    assert beat.status_code == 409


def test_a_failure_report_reissues_the_point(api):
    # given
    request_id = submit(api, max_points=3, point_retries=2)
    point = wait_checkout(api, request_id, worker="w1")

    # when
    response = post(api, request_id, point["id"], "fail", worker="w1", message="CUDA out of memory")

    # then it is free again, with the failure recorded, and the next checkout gets it
    assert response.status_code == 200
    assert response.json()["status"] == "New"
    assert response.json()["failures"][0]["reason"] == "failed on w1: CUDA out of memory"
    assert point_row(request_id, point["id"]).retries == 1
    reissued = wait_for(
        lambda: [p for p in checkout(api, request_id, worker="w2", count=3) if p["id"] == point["id"]],
        what="the failed point checked out again",
    )
    assert reissued[0]["worker"] == "w2"


def test_another_worker_cannot_report_failure_of_a_leased_point(api):
    # given
    request_id = submit(api, max_points=3)
    point = wait_checkout(api, request_id, worker="owner")

    # when
    response = post(api, request_id, point["id"], "fail", worker="intruder", message="x")

    # then
    assert response.status_code == 409
    assert point_row(request_id, point["id"]).status == ContentStatus.PROCESSING


def test_an_invalidated_point_is_hidden_from_generators_and_replaced(api):
    # given a budget of three, all proposed
    request_id = submit(api, max_points=3, num_points_per_generation=3, min_unevaluated_points=1)
    points = wait_for(lambda: checkout(api, request_id, count=3), what="three points")
    report(api, request_id, points[0]["id"], 1.0)

    # when
    response = post(api, request_id, points[0]["id"], "invalidate", reason="wrong dataset")

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "Deleted"
    transform_id = point_row(request_id, points[0]["id"]).collection.transform_id
    assert points[0]["parameters"] not in [p for p, _ in study_history(transform_id)]
    for p in points[1:]:
        report(api, request_id, p["id"], 2.0)
    replacement = wait_checkout(api, request_id)
    assert replacement["id"] == "3"
    assert replacement["provenance"]["generation"] == 2


def test_only_the_owner_may_invalidate(api, other_api):
    # given
    request_id = submit(api, max_points=3)
    point = wait_checkout(api, request_id)

    before = point_row(request_id, point["id"])

    # when
    response = post(other_api, request_id, point["id"], "invalidate")

    # then
    assert response.status_code == 403
    after = point_row(request_id, point["id"])
    assert (after.status, after.details, after.retries) == (before.status, before.details, before.retries)
    assert PointLease.objects.filter(content=after, worker="w1").exists()


def test_a_study_without_losses_times_out(api):
    # given a study with no loss since it started, longer ago than its time-out
    request_id = submit(api, max_points=5, study_timeout=60)
    wait_checkout(api, request_id)
    Transform.objects.filter(request_id=request_id).update(created_at=timezone.now() - timedelta(seconds=61))

    # when
    sweep()

    # then
    request = wait_for(lambda: finished(request_id), what="timed out")
    assert request.status == RequestStatus.FAILED


def test_points_can_be_filtered_by_status_and_worker(api):
    # given
    request_id = submit(api, max_points=4, num_points_per_generation=4)
    mine = wait_for(lambda: checkout(api, request_id, worker="me", count=2), what="points")

    # when
    leased = api.get(f"/api/v1/hpo/studies/{request_id}/points/?status=Processing&worker=me").json()
    free = api.get(f"/api/v1/hpo/studies/{request_id}/points/?status=New").json()
    bad = api.get(f"/api/v1/hpo/studies/{request_id}/points/?status=Evaluated")

    # then
    assert [p["id"] for p in leased] == [p["id"] for p in mine]
    assert len(free) == 2
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({}, "request_metadata.opt_space"),
        ({"lr": [0.1, 0.01]}, "request_metadata.opt_space.lr"),
        ({"lr": {"type": "Normal"}}, "request_metadata.opt_space.lr"),
        ({"lr": ["a", 1]}, "request_metadata.opt_space.lr"),
        ({f"p{i}": [0, 1] for i in range(101)}, "request_metadata.opt_space"),
    ],
)
def test_bad_spaces_get_a_400_naming_the_parameter(api, space, field):
    # when
    response = api.post(
        "/api/v1/requests/", {"request_type": 4, "request_metadata": {"opt_space": space}}, format="json"
    )

    # then
    assert response.status_code == 400
    assert field in response.json()["errors"]
