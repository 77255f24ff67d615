"""The native REST API: submit, list, detail, actions, auth, ownership and bad input."""

from __future__ import annotations

import json

import pytest

from requests_app.models import Request
from requests_app.models.statuses import RequestStatus
from tests.factories import RequestFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/requests/"


def body(**overrides) -> dict:
    data = {"request_type": 99, "workload_id": 7, "request_metadata": {"files": 2}}
    data.update(overrides)
    return data


def test_submitting_returns_the_id_and_url_and_stores_the_cleaned_metadata(api, user):
    response = api.post(URL, body(request_type="Other"), format="json")

    assert response.status_code == 201
    data = response.json()
    request = Request.objects.get(pk=data["request_id"])
    assert data["url"].endswith(f"/api/v1/requests/{request.pk}/")
    assert response["Location"] == data["url"]
    assert request.owner == user
    assert request.status == RequestStatus.NEW
    assert request.request_metadata["files_per_poll"] == 10  # the work type's default


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (body(request_type=12345), "request_type", "unknown request_type"),
        (body(request_type="Workflow"), "request_type", "no work type serves"),
        (body(workload_id="abc"), "workload_id", "valid integer"),
        (body(request_metadata=None), "request_metadata", "null"),
        (body(request_metadata={"files": "many"}), "request_metadata.files", "must be an integer"),
        (body(request_metadata={"files": -1}), "request_metadata.files", "between 0"),
        (body(colour="blue"), "colour", "unknown field"),
        ({"request_metadata": {}}, "request_type", "required"),
    ],
)
def test_bad_fields_get_a_400_naming_the_field_and_write_nothing(api, payload, field, words):
    response = api.post(URL, payload, format="json")

    assert response.status_code == 400, response.content
    data = response.json()
    assert field in data["errors"], data
    assert words in data["errors"][field]
    assert field in data["error"]
    assert words in data["error"]
    assert not Request.objects.exists()


def test_malformed_json_gets_a_400_saying_where(api):
    response = api.generic("POST", URL, '{"request_type": 99,', content_type="application/json")

    assert response.status_code == 400
    assert "malformed JSON at line 1" in response.json()["error"]
    assert not Request.objects.exists()


def test_a_body_that_is_not_an_object_gets_a_400(api):
    response = api.generic("POST", URL, "[1, 2]", content_type="application/json")

    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["error"]


def test_a_payload_over_the_limit_gets_a_400_naming_the_limit(api, settings):
    settings.IDDS_MAX_PAYLOAD_BYTES = 2048
    big = json.dumps(body(request_metadata={"files": 1, "padding": "x" * 5000}))

    response = api.generic("POST", URL, big, content_type="application/json")

    assert response.status_code == 400
    assert "2048 bytes" in response.json()["error"]
    assert not Request.objects.exists()


def test_an_unknown_id_is_a_404(api):
    assert api.get(f"{URL}999999/").status_code == 404
    response = api.post(f"{URL}999999/abort/")
    assert response.status_code == 404
    assert "error" in response.json()


def test_anonymous_clients_can_neither_read_nor_write(anon_api):
    assert anon_api.get(URL).status_code == 401
    assert anon_api.post(URL, body(), format="json").status_code == 401
    assert not Request.objects.exists()


def test_any_authenticated_user_reads_but_only_owner_or_staff_change(api, other_api, staff_api, user):
    # given
    request = RequestFactory(owner=user)

    # when / then
    assert other_api.get(f"{URL}{request.pk}/").status_code == 200
    refused = other_api.post(f"{URL}{request.pk}/abort/")
    assert refused.status_code == 403
    assert "owner" in refused.json()["error"]
    assert Request.objects.get(pk=request.pk).status == RequestStatus.NEW
    suspended = api.post(f"{URL}{request.pk}/suspend/")
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "Suspended"
    assert Request.objects.get(pk=request.pk).status == RequestStatus.SUSPENDED
    resumed = staff_api.post(f"{URL}{request.pk}/resume/")
    assert resumed.status_code == 200
    # Resumed before the clerk made transforms: back to New, for the clerk to pick up.
    assert resumed.json()["status"] == "New"
    assert Request.objects.get(pk=request.pk).status == RequestStatus.NEW


def test_actions_return_the_fresh_request_repeat_with_200_and_refuse_illegal_moves_with_409(api, user):
    request = RequestFactory(owner=user)

    first = api.post(f"{URL}{request.pk}/abort/")
    again = api.post(f"{URL}{request.pk}/abort/")

    assert first.status_code == 200
    assert first.json()["status"] == "ToCancel"
    assert again.status_code == 200
    finished = RequestFactory(owner=user, status=RequestStatus.FINISHED)
    conflict = api.post(f"{URL}{finished.pk}/retry/")
    assert conflict.status_code == 409
    assert "only Failed or SubFinished" in conflict.json()["error"]
    aborted_late = api.post(f"{URL}{finished.pk}/abort/")
    assert aborted_late.status_code == 409
    assert aborted_late.json()["current_status"] == "Finished"
    assert api.post(f"{URL}{finished.pk}/finish/").status_code == 200  # already finished: nothing to do


def test_suspend_and_resume_round_trip(api, user):
    request = RequestFactory(owner=user, status=RequestStatus.TRANSFORMING)

    assert api.post(f"{URL}{request.pk}/suspend/").json()["status"] == "Suspended"
    assert api.post(f"{URL}{request.pk}/resume/").json()["status"] == "New"


def test_the_list_filters_and_pages_by_cursor(api):
    # given
    for index in range(5):
        RequestFactory(workload_id=100 + index, requester="panda" if index % 2 else "user", scope="data15")
    RequestFactory(status=RequestStatus.FINISHED, scope="mc16")

    # when
    page = api.get(URL, {"page_size": 2, "scope": "data15"}).json()
    second = api.get(page["next"]).json()
    by_status = api.get(URL, {"status": "Finished,SubFinished"}).json()
    by_requester = api.get(URL, {"requester": "panda"}).json()
    by_workload = api.get(URL, {"workload_id": 102}).json()

    # then
    assert [r["workload_id"] for r in page["results"]] == [104, 103]
    assert [r["workload_id"] for r in second["results"]] == [102, 101]
    assert [r["scope"] for r in by_status["results"]] == ["mc16"]
    assert {r["requester"] for r in by_requester["results"]} == {"panda"}
    assert [r["workload_id"] for r in by_workload["results"]] == [102]


def test_an_unknown_status_filter_is_a_400_naming_it(api):
    response = api.get(URL, {"status": "Sleeping"})

    assert response.status_code == 400
    assert "status" in response.json()["errors"]
    assert "Sleeping" in response.json()["errors"]["status"]


def test_the_list_costs_the_same_queries_for_5_or_50_requests(api, django_assert_max_num_queries, user):
    RequestFactory.create_batch(50, owner=user)

    # token lookup + page query: no query per row
    with django_assert_max_num_queries(3):
        response = api.get(URL, {"page_size": 50})
    assert len(response.json()["results"]) == 50


def test_the_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", {"format": "json"})

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/requests/" in paths
    assert "/api/v1/requests/{id}/abort/" in paths
    assert api.get("/api/docs/").status_code == 200
