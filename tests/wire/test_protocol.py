"""The encoding rules and the auth of /idds/, checked on the HTTP level (Django's test client, no worker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient

from requests_app.auth.tokens import token_issue
from requests_app.auth.x509 import normalise_dn
from requests_app.models import Request, X509Identity
from requests_app.models.statuses import RequestStatus
from requests_app.wire.encoding import enum_object, enum_value, segment_int, wire_date
from requests_app.wire.errors import WireError

pytestmark = pytest.mark.django_db

DN = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=123456/CN=Jane Doe"
HPO = {
    "request_type": 4,
    "request_metadata": {"workload_id": 7, "method": "random", "opt_space": {"lr": [0.0, 1.0]}, "max_points": 4},
}


@pytest.fixture
def oidc(user) -> dict:
    return {"HTTP_X_IDDS_AUTH_TYPE": "oidc", "HTTP_X_IDDS_AUTH_TOKEN": token_issue(user=user).key}


def error_of(response) -> tuple[str, str]:
    return response["ExceptionClass"], json.loads(response["ExceptionMessage"])["msg"]


def test_enum_objects_are_read_by_value_or_name_and_never_imported():
    # given: a body naming a module and class that must never be imported
    hostile = {"class": "system", "module": "os", "attributes": {"_value_": 7, "_name_": "rm -rf"}}

    # when / then: only the value is read
    assert enum_value(hostile, RequestStatus, "status") == RequestStatus.TO_CANCEL
    assert enum_value({"class": "X", "module": "y", "attributes": {"_name_": "ToResume"}}, RequestStatus, "s") == 13
    assert enum_value("ToSuspend", RequestStatus, "status") == 10
    assert enum_value(12, RequestStatus, "status") == 12
    with pytest.raises(WireError, match="not a RequestStatus"):
        enum_value(99, RequestStatus, "status")
    with pytest.raises(WireError, match="attributes"):
        enum_value({"class": "RequestStatus"}, RequestStatus, "status")


def test_enums_and_dates_leave_in_the_clients_form():
    assert enum_object(RequestStatus, RequestStatus.SUBFINISHED) == {
        "class": "RequestStatus",
        "module": "idds.common.constants",
        "attributes": {"_value_": 4, "_name_": "SubFinished", "_sort_order_": 4},
    }
    assert wire_date(datetime(2026, 11, 24, 23, 6, 6, tzinfo=UTC)) == "Tue, 24 Nov 2026 23:06:06 UTC"


def test_null_and_none_segments_mean_not_given():
    assert segment_int("null", "request_id") is None
    assert segment_int("None", "request_id") is None
    assert segment_int("17", "request_id") == 17
    with pytest.raises(WireError, match="request_id"):
        segment_int("1e3", "request_id")


def test_a_raw_json_body_without_content_type_is_accepted_with_csrf_checks_on(oidc):
    # given: a browser-less client, CSRF enforced as in production
    http = HttpClient(enforce_csrf_checks=True)

    # when: the body as the client sends it (no Content-Type header at all)
    response = http.generic("POST", "/idds/request", json.dumps(HPO).encode(), content_type="", **oidc)

    # then
    assert response.status_code == 200, response.content
    assert Request.objects.get(pk=response.json()["request_id"]).request_type == 4


def test_a_put_with_the_body_null_is_accepted(oidc, user):
    # given
    request = Request.objects.create(request_type=4, owner=user, status=RequestStatus.TRANSFORMING)

    # when
    response = HttpClient().generic("PUT", f"/idds/request/abort/{request.pk}/null", b"null", content_type="", **oidc)

    # then
    assert response.status_code == 200
    assert response.json() == [[0, {"status": 0, "message": "Command registered successfully"}]]
    request.refresh_from_db()
    assert request.status == RequestStatus.TO_CANCEL


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("POST", "/idds/request", b"{not json", ("BadRequest", "not JSON")),
        ("POST", "/idds/request", b"[1, 2]", ("BadRequest", "JSON object")),
        ("POST", "/idds/request", b'{"request_type": 4, "request_metadata": {"x": NaN}}', ("BadRequest", "body")),
        ("GET", "/idds/request/abc/null", b"", ("BadRequest", "request_id")),
        ("GET", "/idds/request/1/null/maybe", b"", ("BadRequest", "with_detail")),
        ("DELETE", "/idds/ping", b"", ("BadRequest", "not allowed")),
        ("PUT", "/idds/request/1", b'{"status": 13, "priority": 3}', ("BadRequest", "only status")),
        ("PUT", "/idds/request/1", b'{"priority": 3}', ("BadRequest", 'with "status"')),
        ("GET", "/idds/catalog/contents/null/null/null/null/null/null/null", b"", ("BadRequest", "at least one")),
        ("GET", "/idds/hpo/null/null/null/null/null", b"", ("BadRequest", "request_id or a workload_id")),
        ("GET", "/idds/hpo/null/5/0/Bogus/1", b"", ("NoObject", "no hyperparameter")),
    ],
)
def test_every_error_carries_the_client_exception_headers(oidc, method, path, body, expected):
    response = HttpClient().generic(method, path, body, content_type="", **oidc)
    assert response.status_code in (400, 404, 405)
    exception_class, message = error_of(response)
    assert exception_class == expected[0]
    assert expected[1] in message


def test_missing_or_unknown_auth_is_refused_with_401_in_the_clients_form():
    for headers in ({}, {"HTTP_X_IDDS_AUTH_TYPE": "kerberos"}, {"HTTP_X_IDDS_AUTH_TYPE": "oidc"}):
        response = HttpClient().get("/idds/ping", **headers)
        assert response.status_code == 401
        assert error_of(response)[0] == "AuthenticationNoPermission"


def test_a_dn_from_a_trusted_front_end_acts_as_its_mapped_user(settings, user):
    # given
    settings.IDDS_X509_TRUSTED_PROXIES = ["127.0.0.0/8"]
    call_command("map_dn", DN, "alice")

    # when: the front end forwards the proxy's DN (proxy suffix and all)
    response = HttpClient().generic(
        "POST",
        "/idds/request",
        json.dumps(HPO).encode(),
        content_type="",
        HTTP_X_IDDS_AUTH_TYPE="x509_proxy",
        HTTP_X_SSL_CLIENT_S_DN=DN + "/CN=proxy",
    )

    # then
    assert response.status_code == 200, response.content
    assert Request.objects.get(pk=response.json()["request_id"]).owner == user


def test_the_dn_header_is_ignored_from_an_untrusted_address(settings, user):
    # given: the test client connects from 127.0.0.1, which is not the front end
    settings.IDDS_X509_TRUSTED_PROXIES = ["10.1.2.3"]
    call_command("map_dn", DN, "alice")

    # when
    response = HttpClient().get("/idds/ping", HTTP_X_IDDS_AUTH_TYPE="x509_proxy", HTTP_X_SSL_CLIENT_S_DN=DN)

    # then
    assert response.status_code == 401
    assert "trusted TLS front end" in error_of(response)[1]


def test_an_unmapped_dn_is_refused(settings):
    settings.IDDS_X509_TRUSTED_PROXIES = ["127.0.0.1"]
    response = HttpClient().get("/idds/ping", HTTP_X_IDDS_AUTH_TYPE="x509_proxy", HTTP_X_SSL_CLIENT_S_DN=DN)
    assert response.status_code == 401
    assert "not mapped" in error_of(response)[1]


def test_map_dn_stores_one_normalised_dn_per_certificate_and_removes_it(user):
    # when: the RFC 2253 form and the slash form of one DN
    call_command("map_dn", "CN=Jane Doe,CN=jdoe,OU=Users,DC=cern,DC=ch", "alice")
    call_command("map_dn", "/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe", "bob")

    # then: one mapping, moved to bob; then removed
    (identity,) = X509Identity.objects.all()
    assert (identity.dn, identity.user.username) == ("/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe", "bob")
    assert normalise_dn(DN + "/CN=limited proxy/CN=987") == DN
    call_command("map_dn", identity.dn, "--remove")
    assert not X509Identity.objects.exists()


def test_a_worker_token_may_not_change_its_owners_other_requests(user):
    # given: two studies of alice, and a worker token of the first
    first = Request.objects.create(request_type=4, owner=user, status=RequestStatus.TRANSFORMING)
    second = Request.objects.create(request_type=4, owner=user, status=RequestStatus.TRANSFORMING)
    worker = token_issue(user=user, study=first).key
    headers = {"HTTP_X_IDDS_AUTH_TYPE": "oidc", "HTTP_X_IDDS_AUTH_TOKEN": worker}

    # when
    response = HttpClient().generic("PUT", f"/idds/request/abort/{second.pk}/null", b"null", content_type="", **headers)

    # then
    assert response.status_code == 403
    assert error_of(response)[0] == "AuthenticationNoPermission"
    second.refresh_from_db()
    assert second.status == RequestStatus.TRANSFORMING


def test_get_requests_answers_every_path_form(oidc, user):
    # given
    request = Request.objects.create(request_type=4, owner=user, workload_id=99)

    # when / then: 0, 1, 2 and 6 segments, null and None alike
    for path in (
        "/idds/request",
        f"/idds/request/{request.pk}",
        "/idds/request/None/99",
        f"/idds/request/{request.pk}/null/True/True/False/False",
    ):
        response = HttpClient().get(path, **oidc)
        assert response.status_code == 200, (path, response.content)
        assert [row["request_id"] for row in response.json()] == [request.pk], path
