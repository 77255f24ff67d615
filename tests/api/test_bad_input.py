"""Every class of bad input gets a 4xx in the JSON error shape naming the field, and writes nothing.

One case per class the security issue (#9) found answering 500; the table in the branch report
is this file's parameters.
"""

from __future__ import annotations

import json

import pytest

from requests_app.models import Request
from requests_app.models.statuses import RequestStatus, RequestType

pytestmark = pytest.mark.django_db
URL = "/api/v1/requests/"


def submit_raw(api, text: str):
    return api.generic("POST", URL, text.encode("utf-8", "surrogatepass"), content_type="application/json")


def countdown(**fields) -> dict:
    return {"request_type": 99, "request_metadata": {"files": 2}, **fields}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param('{"request_type": 99, "request_metadata": {"x": ' + "[" * 5000 + "]" * 5000 + "}}",
                     "body", "nested deeper than 64 levels", id="5000-levels"),
        pytest.param('{"request_type": 99, "request_metadata": {"files": 2, "note": "a\\u0000b"}}',
                     "request_metadata.note", "NUL character", id="nul-in-value"),
        pytest.param('{"request_type": 99, "request_metadata": {"files": 2, "a\\u0000": 1}}',
                     "request_metadata.a\\u0000", "NUL character", id="nul-in-key"),
        pytest.param('{"request_type": 99, "request_metadata": {"files": 2, "note": "\\ud800"}}',
                     "request_metadata.note", "lone UTF-16 surrogate", id="lone-surrogate"),
        pytest.param('{"request_type": 99, "request_metadata": {"files": 2, "opt": {"lr": [1, NaN]}}}',
                     "request_metadata.opt.lr[1]", "finite number, got NaN", id="nan"),
        pytest.param('{"request_type": 99, "request_metadata": {"files": 2, "w": -Infinity}}',
                     "request_metadata.w", "finite number, got -Infinity", id="infinity"),
        pytest.param('{"request_type": 99, "request_metadata": {"files": 2, "w": 1e999}}',
                     "request_metadata.w", "finite number, got 1e999", id="float-overflow"),
    ],
)  # fmt: skip
def test_unsafe_json_is_refused_naming_its_path(api, body, field, words):
    response = submit_raw(api, body)

    assert response.status_code == 400, response.content
    data = response.json()
    assert words in data["errors"][field]
    assert words in data["error"]
    assert not Request.objects.exists()


def test_a_number_of_thousands_of_digits_is_refused(api):
    response = submit_raw(api, '{"request_type": 99, "request_metadata": {"files": ' + "9" * 5000 + "}}")

    assert response.status_code == 400
    assert "more than 4300 digits" in response.json()["error"]


def test_integers_wider_than_64_bits_reach_the_work_type_exactly(api):
    # orjson would have rounded this to a float; the work type sees the integer and refuses it.
    response = submit_raw(api, '{"request_type": 99, "request_metadata": {"files": 123456789012345678901234567890}}')

    assert response.status_code == 400
    assert "123456789012345678901234567890" in response.json()["errors"]["request_metadata.files"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param(countdown(workload_id=2**63), "workload_id", "less than or equal to 9223372036854775807",
                     id="workload_id-over-bigint"),
        pytest.param(countdown(workload_id=-(2**63) - 1), "workload_id", "greater than or equal to",
                     id="workload_id-under-bigint"),
        pytest.param(countdown(workload_id="١٢"), "workload_id", "valid integer", id="workload_id-arabic-digits"),
        pytest.param(countdown(priority="³"), "priority", "valid integer", id="priority-superscript"),
        pytest.param(countdown(lifetime=2**31), "lifetime", "less than or equal to 3650", id="lifetime-over-int"),
        pytest.param(countdown(request_type="³"), "request_type", "unknown request_type", id="request_type-sup"),
        pytest.param(countdown(request_type="٤"), "request_type", "unknown request_type", id="request_type-arabic"),
        pytest.param(countdown(status="³"), "status", "valid integer", id="status-superscript"),
    ],
)  # fmt: skip
def test_numbers_are_ascii_and_fit_their_column(api, body, field, words):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert words in response.json()["errors"][field]
    assert not Request.objects.exists()


def test_an_opt_space_bound_too_large_for_a_float_is_refused_naming_the_parameter(api):
    body = {"request_type": 4, "request_metadata": {"opt_space": {"lr": [0, int("1" + "0" * 400)]}}}

    response = submit_raw(api, json.dumps(body))

    assert response.status_code == 400, response.content
    data = response.json()
    assert "finite number" in data["errors"]["request_metadata.opt_space.lr"]
    assert not Request.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/requests/abc/abort/"),
        ("get", "/api/v1/requests/abc/events/"),
        ("get", "/api/v1/requests/abc/"),
        ("post", "/api/v1/requests/99999999999999999999/abort/"),
        ("get", "/api/v1/requests/99999999999999999999/events/"),
        ("get", "/api/v1/requests/99999999999999999999/"),
        ("get", "/api/v1/transforms/99999999999999999999/"),
        ("get", "/api/v1/contents/%C2%B3/"),
        ("get", "/api/v1/no-such-thing/"),
    ],
)
def test_paths_that_name_no_object_are_a_json_404(api, method, path):
    response = getattr(api, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("status=%C2%B3", "status", "unknown status"),
        ("request_type=%C2%B3", "request_type", "unknown request_type"),
        ("workload_id=%D9%A1%D9%A2", "workload_id", "must be an integer"),
        ("workload_id=99999999999999999999", "workload_id", "must be an integer"),
        ("workload_id=", "workload_id", "must be an integer"),
        ("created_after=2026-01-01T00:00:00%2B25:00", "created_after", "valid date/time"),
        ("created_after=", "created_after", "empty"),
        ("page_size=0", "page_size", "from 1 to 1000"),
        ("page_size=%C2%B3", "page_size", "from 1 to 1000"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_them(api, query, field, words):
    response = api.get(f"{URL}?{query}")

    assert response.status_code == 400, response.content
    assert words in response.json()["errors"][field]


@pytest.mark.parametrize("offset", ["+21:59", "-23:59", "+00:00"])
def test_every_valid_offset_filters_in_utc(api, offset):
    # PostgreSQL itself refuses offsets beyond 15:59; the filter hands it UTC.
    api.post(URL, countdown(), format="json")

    response = api.get(
        URL, {"created_after": f"2000-01-01T00:00:00{offset}", "created_before": "9999-12-31T23:00:00-23:00"}
    )

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


def test_a_forged_cursor_position_is_a_404_not_a_database_error(api):
    cursor = "cD1hYmM="  # base64 of "p=abc"

    response = api.get(URL, {"cursor": cursor})

    assert response.status_code == 404
    assert response.json() == {"error": "Invalid cursor"}


def test_a_null_owner_is_served_as_null(api):
    Request.objects.create(request_type=RequestType.OTHER, status=RequestStatus.NEW, owner=None)

    response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["results"][0]["owner"] is None


def test_a_workload_id_inside_metadata_that_fits_no_column_is_a_400(api):
    # The HPO work type keeps metadata's workload_id, which then fills the bigint column.
    body = {"request_type": 4, "request_metadata": {"opt_space": {"lr": [0, 1]}, "workload_id": 10**30}}

    response = submit_raw(api, json.dumps(body))

    assert response.status_code == 400, response.content
    assert "must be between" in response.json()["errors"]["request_metadata.workload_id"]
    assert not Request.objects.exists()
