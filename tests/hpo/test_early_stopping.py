"""Early stopping: the rules, the study option's validation, and intermediate reports over REST on a live study."""

from __future__ import annotations

import pytest

from hpo.early_stopping import early_stopping_validate, halving_verdict, median_verdict, rung_of
from hpo.generation import study_history
from requests_app.errors import WorkTypeValidationError
from requests_app.models import Content, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus
from tests.hpo.study_helpers import SPACE, stop_live_studies, submit, wait_checkout

MEDIAN = {"rule": "median", "warmup_steps": 1, "min_points": 2}
HALVING = {"rule": "successive_halving", "min_steps": 1, "reduction_factor": 3}


# --- the rules ---------------------------------------------------------------------------------------------


def test_the_median_rule_stops_a_point_worse_than_the_median_of_the_others():
    verdict = median_verdict(step=2, own_values=[0.9, 0.8], others_at_step=[0.1, 0.5, 0.7], option=MEDIAN)
    assert verdict.stop
    assert "median 0.5" in verdict.reason


def test_the_median_rule_judges_the_best_value_so_far():
    verdict = median_verdict(step=2, own_values=[0.2, 0.8], others_at_step=[0.1, 0.5, 0.7], option=MEDIAN)
    assert not verdict.stop


def test_the_median_rule_lets_warm_up_steps_and_lonely_points_continue():
    assert not median_verdict(step=1, own_values=[9.0], others_at_step=[0.1, 0.2], option=MEDIAN).stop
    assert not median_verdict(step=2, own_values=[9.0], others_at_step=[0.1], option=MEDIAN).stop


def test_rungs_are_at_min_steps_times_powers_of_the_reduction_factor():
    assert [step for step in range(1, 30) if rung_of(step, HALVING) is not None] == [1, 3, 9, 27]
    assert rung_of(9, HALVING) == 2


def test_successive_halving_keeps_the_best_third_at_a_rung():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert not halving_verdict(step=3, value=0.2, values_at_step=values, option=HALVING).stop
    assert halving_verdict(step=3, value=0.3, values_at_step=values, option=HALVING).stop
    # the first point at a rung always continues, and steps between rungs are not judged
    assert not halving_verdict(step=3, value=5.0, values_at_step=[5.0], option=HALVING).stop
    assert not halving_verdict(step=2, value=0.6, values_at_step=values, option=HALVING).stop


def test_the_option_is_filled_in_with_defaults():
    assert early_stopping_validate({"rule": "median"}) == {"rule": "median", "warmup_steps": 0, "min_points": 3}
    assert early_stopping_validate(None) is None


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ({"rule": "hyperband"}, "request_metadata.early_stopping.rule"),
        ({"rule": "median", "min_points": 0}, "request_metadata.early_stopping.min_points"),
        ({"rule": "successive_halving", "reduction_factor": 1.5}, "request_metadata.early_stopping.reduction_factor"),
        ({"rule": "median", "patience": 3}, "request_metadata.early_stopping"),
        ("median", "request_metadata.early_stopping"),
    ],
)
def test_a_bad_option_is_refused_naming_the_field(option, field):
    with pytest.raises(WorkTypeValidationError) as refused:
        early_stopping_validate(option)
    assert field in refused.value.errors


@pytest.mark.django_db
def test_a_study_with_a_bad_option_is_a_400_naming_the_field(api):
    body = {"request_type": 4, "request_metadata": {"opt_space": SPACE, "early_stopping": {"rule": "median", "x": 1}}}
    response = api.post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400
    assert "request_metadata.early_stopping" in response.json()["errors"]


# --- intermediate reports on a live study ----------------------------------------------------------------


@pytest.fixture
def live(celery_worker):
    yield
    stop_live_studies()


def intermediate(api, request_id: int, point: str, step, value, worker: str = "w1"):
    body = {"worker": worker, "step": step, "value": value}
    return api.post(f"/api/v1/hpo/studies/{request_id}/points/{point}/intermediate/", body, format="json")


def point_row(request_id: int, name: str) -> Content:
    return Content.objects.get(
        collection__request_id=request_id, collection__relation_type=CollectionRelationType.OUTPUT, name=name
    )


def test_a_point_worse_than_the_median_is_stopped_and_recorded_as_pruned(api, live):
    # given a median rule that judges from the first step on, against at least one other point
    request_id = submit(
        api, max_points=3, num_points_per_generation=3, early_stopping={"rule": "median", "min_points": 1}
    )
    good = wait_checkout(api, request_id, worker="a")
    bad = wait_checkout(api, request_id, worker="b")

    # when the first reports alone, then the second reports a worse value at the same step
    first = intermediate(api, request_id, good["id"], 1, 0.2, worker="a")
    second = intermediate(api, request_id, bad["id"], 1, 0.7, worker="b")

    # then the first goes on, the second is stopped and recorded as pruned with its last value
    assert first.status_code == 200, first.content
    assert first.json()["decision"] == "continue"
    assert second.status_code == 200, second.content
    answer = second.json()
    assert answer["decision"] == "stop"
    assert answer["point"]["status"] == "Available"
    assert answer["point"]["pruned"] is True
    assert answer["point"]["loss"] == 0.7
    row = point_row(request_id, bad["id"])
    assert row.status == ContentStatus.AVAILABLE
    assert row.details["pruned_at_step"] == 1
    assert row.path.endswith(", 0.7]")
    # and the generators see it with that loss
    transform = Transform.objects.get(request_id=request_id)
    assert (bad["parameters"], 0.7) in study_history(transform.pk)
    # and the pruned point takes no more intermediate values
    assert intermediate(api, request_id, bad["id"], 2, 0.6, worker="b").status_code == 409


def test_intermediate_reports_are_checked_and_idempotent(api, live):
    # given a leased point of a study without early stopping
    request_id = submit(api, max_points=2)
    point = wait_checkout(api, request_id)["id"]

    # when / then: a bad step or value is a 400 naming it
    bad_step = intermediate(api, request_id, point, -1, 0.5)
    assert bad_step.status_code == 400
    assert "step" in bad_step.json()["errors"]
    bad_value = intermediate(api, request_id, point, 1, "NaN")
    assert bad_value.status_code == 400
    assert "value" in bad_value.json()["errors"]
    # the same value again answers the same; another value for the step is a conflict
    assert intermediate(api, request_id, point, 1, 0.5).json()["decision"] == "continue"
    assert intermediate(api, request_id, point, 1, 0.5).json()["decision"] == "continue"
    assert intermediate(api, request_id, point, 1, 0.4).status_code == 409
    # another worker name is not the lease holder
    assert intermediate(api, request_id, point, 2, 0.4, worker="someone-else").status_code == 409
    # and nothing was pruned
    assert point_row(request_id, point).status == ContentStatus.PROCESSING
