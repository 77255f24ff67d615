"""Errors outside DRF: JSON under /api/ with DEBUG off, Django's pages elsewhere; a crash has an id in the log."""

from __future__ import annotations

import logging
import re

import pytest
from django.db import DataError
from django.test import Client

from requests_app.api.exceptions import exception_handler

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls_with_failing_view")]


@pytest.fixture
def client_seeing_responses() -> Client:
    """Django's test client re-raises a view's exception by default; a real client gets the 500."""
    return Client(raise_request_exception=False)


def test_a_crash_under_api_answers_json_with_an_error_id_that_is_in_the_log(client_seeing_responses, caplog, settings):
    settings.DEBUG = False

    with caplog.at_level(logging.ERROR, logger="idds.api.errors"):
        response = client_seeing_responses.get("/api/v1/failing/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "internal error"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["error_id"])
    logged = [record for record in caplog.records if body["error_id"] in record.getMessage()]
    assert logged, caplog.text
    # The traceback is logged with the id.
    assert "a bug in a view" in str(logged[0].exc_info[1])


def test_a_crash_outside_api_keeps_the_html_page(client_seeing_responses, settings):
    settings.DEBUG = False

    response = client_seeing_responses.get("/failing-page/")

    assert response.status_code == 500
    assert "application/json" not in response["Content-Type"]


def test_an_unrouted_api_path_is_a_json_404(client_seeing_responses):
    response = client_seeing_responses.get("/api/v1/nowhere/")

    assert response.status_code == 404
    assert response.json() == {"error": "not found: /api/v1/nowhere/"}


def test_an_unauthenticated_call_is_a_json_401(client_seeing_responses):
    response = client_seeing_responses.get("/api/v1/requests/")

    assert response.status_code == 401
    assert response.json()["error"]


def test_input_the_database_refuses_is_still_a_400_and_is_logged_as_a_gap(caplog):
    # The safety net behind the validators: a DataError is the client's input, logged to be closed.
    with caplog.at_level(logging.WARNING, logger="idds.api.errors"):
        response = exception_handler(DataError("integer out of range\nDETAIL: ..."), {})

    assert response.status_code == 400
    assert response.data == {"error": "a value does not fit the database: integer out of range"}
    assert "input refused by the database" in caplog.text
