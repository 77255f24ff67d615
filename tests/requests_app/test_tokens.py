"""Hashed API tokens, study-scoped worker tokens and who may issue them (REST and commands)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from requests_app.auth.service_user import SERVICE_USERNAME, command_owner
from requests_app.auth.tokens import key_hash, token_authenticate, token_issue, token_revoke
from requests_app.models import ApiToken, Request
from requests_app.models.statuses import RequestStatus, RequestType
from tests.factories import RequestFactory

pytestmark = pytest.mark.django_db

REQUESTS = "/api/v1/requests/"


def client_with(key: str, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def study_of(user, **extra) -> Request:
    return RequestFactory(owner=user, request_type=RequestType.HYPER_PARAMETER_OPT, **extra)


def test_the_database_holds_only_a_hash_and_a_short_prefix_of_the_key(user):
    # when
    issued = token_issue(user=user, name="laptop")

    # then no column of the row contains the key
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM requests_app_apitoken WHERE id = %s", [issued.token.pk])
        row = cursor.fetchone()
    assert not any(issued.key in str(value) for value in row)
    assert issued.token.key_hash == key_hash(issued.key)
    assert issued.key.startswith(issued.token.prefix)
    # 35 of the 43 random characters (about 210 bits) are never shown after issue.
    assert len(issued.key) - len(issued.token.prefix) >= 32


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
def test_both_header_forms_authenticate(user, scheme):
    key = token_issue(user=user).key

    assert client_with(key, scheme).get(REQUESTS).status_code == 200


def test_revoked_expired_and_unknown_tokens_get_a_json_401(user):
    # given
    revoked = token_issue(user=user)
    token_revoke(token=revoked.token)
    expired = token_issue(user=user, expires_days=1)
    ApiToken.objects.filter(pk=expired.token.pk).update(
        created_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(seconds=1)
    )

    # when
    answers = {
        "revoked": client_with(revoked.key).get(REQUESTS),
        "expired": client_with(expired.key).get(REQUESTS),
        "invalid": client_with(revoked.key + "x").get(REQUESTS),
    }

    # then
    for word, response in answers.items():
        assert response.status_code == 401
        assert word in response.json()["error"]


def test_a_refused_token_changes_nothing(user):
    # given
    revoked = token_issue(user=user)
    token_revoke(token=revoked.token)
    before = ApiToken.objects.values().get(pk=revoked.token.pk)

    # when
    response = client_with(revoked.key).post(REQUESTS, {"request_type": 99, "request_metadata": {}}, format="json")

    # then
    assert response.status_code == 401
    assert ApiToken.objects.values().get(pk=revoked.token.pk) == before
    assert not Request.objects.exists()


def test_authentication_is_one_indexed_query_and_last_use_is_written_once_a_minute(user, django_assert_num_queries):
    # given a token used a moment ago
    issued = token_issue(user=user)
    assert token_authenticate(issued.key) == (user, issued.token)
    first_use = ApiToken.objects.get(pk=issued.token.pk).last_used_at

    # when it is used again at once
    with django_assert_num_queries(1):
        found = token_authenticate(issued.key)

    # then
    assert found[0] == user
    assert first_use is not None
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at == first_use


def test_a_worker_token_is_refused_outside_its_study(user):
    # given
    study = study_of(user)
    pilot = client_with(token_issue(user=user, study=study).key)

    # when
    answers = [
        pilot.post(REQUESTS, {"request_type": 99, "request_metadata": {}}, format="json"),
        pilot.get(REQUESTS),
        pilot.get(f"{REQUESTS}{study.pk}/"),
        pilot.post(f"{REQUESTS}{study.pk}/abort/"),
        pilot.get("/api/v1/transforms/"),
        pilot.post(f"/api/v1/hpo/studies/{study.pk}/worker-tokens/", {}, format="json"),
        pilot.post(f"/api/v1/hpo/studies/{study.pk}/points/0/invalidate/", {}, format="json"),
    ]

    # then
    assert [r.status_code for r in answers] == [403] * len(answers)
    assert "worker token" in answers[0].json()["error"]
    assert list(Request.objects.values_list("pk", "status")) == [(study.pk, study.status)]
    assert ApiToken.objects.count() == 1


def test_the_owner_issues_lists_and_revokes_worker_tokens_over_rest(api, user):
    # given
    study = study_of(user)
    url = f"/api/v1/hpo/studies/{study.pk}/worker-tokens/"

    # when
    issued = api.post(url, {"name": "site-a", "expires_days": 7}, format="json")
    listed = api.get(url)
    key = issued.json()["key"]
    worked = client_with(key).get(f"/api/v1/hpo/studies/{study.pk}/points/")
    revoked = api.delete(f"{url}{issued.json()['id']}/")
    after = client_with(key).get(f"/api/v1/hpo/studies/{study.pk}/points/")

    # then the key is shown once, listed by prefix only, and stops working when revoked
    assert issued.status_code == 201
    assert issued.json()["study"] == study.pk
    assert listed.status_code == 200
    assert [t["prefix"] for t in listed.json()] == [issued.json()["prefix"]]
    assert "key" not in listed.json()[0]
    assert key not in listed.content.decode()
    # 404: the study has no transform yet; the token got past authentication and permission.
    assert worked.status_code == 404
    assert revoked.status_code == 204
    assert after.status_code == 401
    assert ApiToken.objects.get(study=study).state() == "revoked"


def test_only_the_owner_or_staff_manage_worker_tokens(user, other_api, staff_api):
    # given
    study = study_of(user)
    url = f"/api/v1/hpo/studies/{study.pk}/worker-tokens/"
    existing = token_issue(user=user, study=study)

    # when
    refused = [
        other_api.post(url, {}, format="json"),
        other_api.get(url),
        other_api.delete(f"{url}{existing.token.pk}/"),
    ]
    by_staff = staff_api.post(url, {}, format="json")

    # then
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert ApiToken.objects.get(pk=existing.token.pk).revoked_at is None
    assert by_staff.status_code == 201
    assert ApiToken.objects.filter(study=study).count() == 2


def test_no_worker_token_for_an_ended_or_non_hpo_request(api, user):
    # given
    ended = study_of(user, status=RequestStatus.CANCELLED)
    other_kind = RequestFactory(owner=user)

    # when
    answers = [
        api.post(f"/api/v1/hpo/studies/{ended.pk}/worker-tokens/", {}, format="json"),
        api.post(f"/api/v1/hpo/studies/{other_kind.pk}/worker-tokens/", {}, format="json"),
        api.post(f"/api/v1/hpo/studies/{2**64}/worker-tokens/", {}, format="json"),
        api.post(f"/api/v1/hpo/studies/{ended.pk}/worker-tokens/", {"expires_days": 0}, format="json"),
    ]

    # then
    assert [r.status_code for r in answers] == [409, 404, 404, 400]
    assert not ApiToken.objects.filter(study__isnull=False).exists()


def test_issue_worker_token_prints_a_token_scoped_to_the_study(user):
    # given
    study = study_of(user)
    out = StringIO()

    # when
    call_command(
        "issue_worker_token", str(study.pk), "--name", "pilot", "--expires-days", "2", stdout=out, stderr=StringIO()
    )

    # then
    key = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get(key_hash=key_hash(key))
    assert (token.study_id, token.user_id, token.name) == (study.pk, user.pk, "pilot")
    assert client_with(key).get(REQUESTS).status_code == 403


def test_commands_without_owner_get_the_service_user_which_cannot_log_in():
    owner = command_owner(None)

    assert owner.username == SERVICE_USERNAME
    assert not owner.has_usable_password()
    assert command_owner("") == owner


def test_drf_tokens_are_carried_over_hashed_and_their_table_dropped(user):
    # given a database that still has DRF's clear-text token table
    migration = importlib.import_module("requests_app.migrations.0006_hash_drf_tokens")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id int, created timestamptz)")
        cursor.execute(
            "INSERT INTO authtoken_token VALUES ('0123456789abcdef0123456789abcdef01234567', %s, now())", [user.pk]
        )

    # when
    with connection.schema_editor() as editor:
        migration.hash_old_tokens(apps, editor)

    # then the old key still authenticates, and is nowhere in clear
    assert token_authenticate("0123456789abcdef0123456789abcdef01234567")[0] == user
    assert "authtoken_token" not in connection.introspection.table_names()
