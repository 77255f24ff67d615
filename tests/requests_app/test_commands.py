"""Management commands: submit_request, request_status, abort_request, issue_token, prune, requeue."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from requests_app.auth.service_user import SERVICE_USERNAME
from requests_app.auth.tokens import key_hash
from requests_app.demos import demo_steps
from requests_app.models import ApiToken, Message, Request
from requests_app.models.statuses import MessageStatus, RequestStatus
from tests.factories import MessageFactory, RequestFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_submit_request_prints_the_id_of_the_new_request(tmp_path):
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"request_type": 99, "workload_id": 5, "request_metadata": {"files": 1}}))

    printed = run("submit_request", str(path)).strip()

    request = Request.objects.get(pk=int(printed))
    assert request.workload_id == 5
    assert request.owner.username == SERVICE_USERNAME
    assert not request.owner.has_usable_password()


def test_submit_request_gives_the_request_its_owner(tmp_path, user):
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"request_type": 99, "request_metadata": {"files": 1}}))

    printed = run("submit_request", str(path), "--owner", user.username).strip()

    assert Request.objects.get(pk=int(printed)).owner == user
    with pytest.raises(CommandError, match="no user 'nobody'"):
        run("submit_request", str(path), "--owner", "nobody")
    assert Request.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [('{"request_type": 99,', "malformed JSON"), ('{"request_type": 99, "request_metadata": {"files": "x"}}', "files")],
)
def test_submit_request_explains_bad_files(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)

    with pytest.raises(CommandError, match=words):
        run("submit_request", str(path))
    assert not Request.objects.exists()


def test_request_status_shows_a_table_and_abort_request_aborts():
    request = RequestFactory(scope="data15", name="ds.1")

    table = run("request_status", str(request.pk))
    aborted = run("abort_request", str(request.pk))

    assert f"Request {request.pk}" in table
    assert "data15:ds.1" in table
    assert "ToCancel" in aborted
    with pytest.raises(CommandError, match="no request 424242"):
        run("abort_request", "424242")


def test_issue_token_creates_the_user_and_prints_a_new_working_token_last(client):
    output = run("issue_token", "carol", "--staff", "--name", "laptop", "--expires-days", "30")
    token = output.strip().splitlines()[-1]

    row = ApiToken.objects.get(key_hash=key_hash(token))
    assert row.user.username == "carol"
    assert row.user.is_staff
    assert row.name == "laptop"
    assert row.expires_at is not None
    second = run("issue_token", "carol").strip().splitlines()[-1]
    assert second != token
    for key in (token, second):
        assert client.get("/api/v1/requests/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_revoke_token_stops_a_token_working(client):
    token = run("issue_token", "dave").strip().splitlines()[-1]
    row = ApiToken.objects.get(key_hash=key_hash(token))

    summary = run("revoke_token", "--id", str(row.pk))

    assert row.prefix in summary
    assert client.get("/api/v1/requests/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401
    with pytest.raises(CommandError, match="no active token"):
        run("revoke_token", "--user", "dave")


def test_prune_counts_in_dry_run_and_then_deletes_only_old_finished_things():
    old = timezone.now() - timedelta(days=400)
    old_request = RequestFactory(status=RequestStatus.FINISHED)
    live_request = RequestFactory(status=RequestStatus.TRANSFORMING)
    Request.objects.filter(pk__in=[old_request.pk, live_request.pk]).update(updated_at=old)
    stale = MessageFactory(request=live_request, transform__request=live_request, status=MessageStatus.DELIVERED)
    Message.objects.filter(pk=stale.pk).update(delivered_at=old)
    fresh = MessageFactory(status=MessageStatus.DELIVERED, delivered_at=timezone.now())

    dry = run("prune", "--dry-run")
    real = run("prune")

    assert "would delete 1 message(s) and 1 request(s)" in dry
    assert "deleted 1 message(s) and 1 request(s)" in real
    assert not Request.objects.filter(pk=old_request.pk).exists()
    assert Request.objects.filter(pk=live_request.pk).exists()
    assert Message.objects.filter(pk=fresh.pk).exists()


def test_requeue_messages_gives_failed_messages_another_go():
    failed = MessageFactory(status=MessageStatus.FAILED, attempts=10, last_error="refused")

    assert "re-queued 1" in run("requeue_messages")
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_error) == (MessageStatus.NEW, 0, "")


def test_each_work_type_app_registers_its_own_demo_step_in_order():
    steps = demo_steps()

    assert [step.name for step in steps] == ["carousel", "hpo", "activelearning"]
    assert [step.command for step in steps] == ["carousel_campaign", "hpo_demo", "al_demo"]


def test_run_demo_runs_only_the_steps_not_skipped():
    # given: every registered step left out
    out = StringIO()

    # when
    call_command("run_demo", "--skip", "carousel", "--skip", "hpo", "--skip", "activelearning", stdout=out)

    # then: nothing was submitted, and the command says it finished
    assert not Request.objects.exists()
    assert "Demo finished" in out.getvalue()
    assert "Data carousel" not in out.getvalue()
