"""Stage-in parameters: cleaned when right, refused with a clear 400 naming each field when wrong."""

from __future__ import annotations

import pytest

from carousel.metadata import DEFAULT_MAX_WAITING_TIME, clean_stagein_metadata
from requests_app.errors import WorkTypeValidationError
from requests_app.models import Request

FIELDS = {"scope": "data16_13TeV", "name": "data16_13TeV.raw", "requester": "panda", "workload_id": None}


def test_it_accepts_a_request_as_the_workload_system_sends_it():
    # when
    cleaned = clean_stagein_metadata({"workload_id": 123456790, "rule_id": "a" * 32}, FIELDS)

    # then
    assert cleaned["workload_id"] == 123456790
    assert (cleaned["scope"], cleaned["name"]) == ("data16_13TeV", "data16_13TeV.raw")
    assert cleaned["max_waiting_time"] == DEFAULT_MAX_WAITING_TIME
    assert cleaned["max_extra_rules"] == 1


def test_it_needs_a_destination_when_no_rule_is_given():
    with pytest.raises(WorkTypeValidationError) as caught:
        clean_stagein_metadata({"workload_id": 1}, FIELDS)
    assert set(caught.value.errors) == {"request_metadata.dest_rse"}


@pytest.mark.parametrize(
    ("metadata", "field", "words"),
    [
        ({"dest_rse": "X"}, "request_metadata.workload_id", "required"),
        ({"workload_id": "12", "dest_rse": "X"}, "request_metadata.workload_id", "non-negative integer"),
        ({"workload_id": 1, "rule_id": "not-a-rule"}, "request_metadata.rule_id", "32-character"),
        ({"workload_id": 1, "dest_rse": ""}, "request_metadata.dest_rse", "non-empty"),
        ({"workload_id": 1, "dest_rse": "X", "max_waiting_time": -5}, "request_metadata.max_waiting_time", "between"),
        ({"workload_id": 1, "dest_rse": "X", "lifetime": 1.5}, "request_metadata.lifetime", "an integer"),
        ({"workload_id": 1, "dest_rse": "X", "priority": True}, "request_metadata.priority", "an integer"),
        ({"workload_id": 1, "dest_rse": "X", "max_extra_rules": 9}, "request_metadata.max_extra_rules", "between 0"),
    ],
)
def test_it_names_the_bad_field_and_what_is_wrong(metadata, field, words):
    with pytest.raises(WorkTypeValidationError) as caught:
        clean_stagein_metadata(metadata, FIELDS)
    assert words in caught.value.errors[field]


@pytest.mark.django_db
def test_it_refuses_bad_metadata_over_rest_with_a_400_listing_every_field(api):
    # when
    response = api.post(
        "/api/v1/requests/",
        {"request_type": 2, "request_metadata": {"workload_id": -3, "max_waiting_time": "soon"}},
        format="json",
    )

    # then
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "scope",
        "name",
        "request_metadata.workload_id",
        "request_metadata.dest_rse",
        "request_metadata.max_waiting_time",
    }
    assert "max_waiting_time" in response.json()["error"]
    assert not Request.objects.exists()
