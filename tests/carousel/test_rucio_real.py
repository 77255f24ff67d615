"""The Rucio backend against a real Rucio server (release of the client), through the real client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from carousel.backends.base import RuleRequest
from carousel.backends.rucio import DELETED_MARK, RucioBackend
from requests_app.errors import PermanentError, TransientError
from requests_app.models import Message, Processing, Request
from requests_app.models.statuses import RequestStatus
from tests.carousel.rucio_server import (
    BNL_TAPE,
    CERN_TAPE,
    DISK,
    OTHER_DISK,
    SCOPE,
    RealRucio,
)
from tests.conftest import wait_for
from tools.servers import free_port


def stage_request(name: str, comment: str = "idds processing 7", **overrides: object) -> RuleRequest:
    fields = {
        "dids": ((SCOPE, name),),
        "rse_expression": DISK,
        "source_replica_expression": CERN_TAPE,
        "lifetime": 7 * 86400,
        "grouping": "DATASET",
        "activity": "Staging",
        "comment": comment,
    }
    return RuleRequest(**{**fields, **overrides})


def test_it_lists_the_files_of_a_dataset_with_sizes_and_checksums(real_rucio: RealRucio):
    # given
    name, rows = real_rucio.add_dataset(files=20)

    # when
    files = real_rucio.backend().list_files(SCOPE, name)

    # then
    assert sorted((f.scope, f.name, f.bytes, f.adler32) for f in files) == sorted(
        (row["scope"], row["name"], row["bytes"], row["adler32"]) for row in rows
    )


def test_it_reads_the_dataset_metadata_with_aware_dates(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=3)

    # when
    meta = real_rucio.backend().get_dataset_metadata(SCOPE, name)

    # then
    assert (meta["did_type"], meta["length"], meta["is_open"]) == ("DATASET", 3, False)
    assert meta["created_at"].tzinfo is UTC


def test_it_creates_a_rule_with_every_requested_parameter_and_keeps_its_creation_time(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=5)
    real_rucio.skip_dataset(name)
    backend = real_rucio.backend()

    # when
    (rule_id,) = backend.create_rule(stage_request(name))
    info = backend.get_rule(rule_id)

    # then
    rule = real_rucio.root.get_replication_rule(rule_id)
    assert (rule["scope"], rule["name"], rule["account"]) == (SCOPE, name, "idds")
    assert (rule["rse_expression"], rule["source_replica_expression"], rule["copies"]) == (DISK, CERN_TAPE, 1)
    assert (rule["grouping"], rule["activity"], rule["comments"]) == ("DATASET", "Staging", "idds processing 7")
    assert info.created_at == rule["created_at"].replace(tzinfo=UTC)
    assert info.expires_at - info.created_at == pytest.approx(timedelta(days=7), abs=timedelta(seconds=5))
    assert (info.state, info.locks_replicating_cnt) == ("REPLICATING", 5)


def test_it_adopts_its_rule_by_comments_when_the_submit_is_repeated_after_a_crash(real_rucio: RealRucio):
    # given a rule created, then the process died before committing its id
    name, _ = real_rucio.add_dataset(files=4)
    real_rucio.skip_dataset(name)
    first = real_rucio.backend().create_rule(stage_request(name))

    # when
    second = real_rucio.backend().create_rule(stage_request(name))

    # then
    assert second == first
    assert [row["id"] for row in real_rucio.root.list_did_rules(SCOPE, name)] == first


def test_it_adopts_its_restage_rules_by_comments_after_a_crash(real_rucio: RealRucio):
    # given re-stage rules on three files, created before a crash
    name, rows = real_rucio.add_dataset(files=3)
    real_rucio.skip_dataset(name)
    files = [(SCOPE, row["name"]) for row in rows]
    backend = real_rucio.backend()
    request = backend.restage_request(files=files, rse_expression=DISK, avoid_source=CERN_TAPE, comment="idds r 1")
    first = backend.create_rule(request)

    # when
    second = real_rucio.backend().create_rule(request)

    # then
    assert second == first
    assert len(set(first)) == 3


def test_it_creates_a_new_rule_when_the_comment_and_destination_differ(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    backend = real_rucio.backend()
    (first,) = backend.create_rule(stage_request(name, comment="idds processing 7"))

    # when
    (other,) = backend.create_rule(stage_request(name, comment="idds processing 8", rse_expression=OTHER_DISK))

    # then
    assert other != first
    assert real_rucio.root.get_replication_rule(other)["comments"] == "idds processing 8"


def test_it_refuses_a_live_rule_of_another_processing_naming_it(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    backend = real_rucio.backend()
    (first,) = backend.create_rule(stage_request(name, comment="idds processing 7"))

    # when
    with pytest.raises(PermanentError) as refused:
        backend.create_rule(stage_request(name, comment="idds processing 9"))

    # then
    assert f"Rucio rule {first} of account idds already stages" in str(refused.value)
    assert "give its id as rule_id to adopt it" in str(refused.value)


def test_it_adopts_a_rule_given_by_id_and_refuses_one_of_another_dataset(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=3)
    other, _ = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    real_rucio.skip_dataset(other)
    backend = real_rucio.backend()
    (rule_id,) = backend.create_rule(stage_request(name, comment=""))
    (other_rule,) = backend.create_rule(stage_request(other, comment=""))

    # when
    info = backend.adopt_rule(rule_id, scope=SCOPE, name=name)
    with pytest.raises(PermanentError) as refused:
        backend.adopt_rule(other_rule, scope=SCOPE, name=name)

    # then
    assert (info.rule_id, info.state, info.locks_replicating_cnt) == (rule_id, "REPLICATING", 3)
    assert f"is for {SCOPE}:{other}, not for {SCOPE}:{name}" in str(refused.value)


def test_it_sees_locks_land_in_tape_order(real_rucio: RealRucio):
    # given
    name, rows = real_rucio.add_dataset(files=20)
    backend = real_rucio.backend()

    # when
    (rule_id,) = backend.create_rule(stage_request(name))
    real_rucio.wait_rule(rule_id, state="OK")

    # then
    locks = list(backend.list_locks(rule_id))
    assert sorted(lock.name for lock in locks) == sorted(row["name"] for row in rows)
    assert {(lock.state, lock.rse) for lock in locks} == {("OK", DISK)}
    events = real_rucio.events({row["name"] for row in rows})
    assert len(events) == 20
    assert {event["source"] for event in events} == {CERN_TAPE}
    assert [event["at"] for event in events] == sorted(event["at"] for event in events)
    assert backend.get_rule(rule_id).locks_ok_cnt == 20


def test_it_restages_stuck_files_from_the_tape_that_did_not_fail(real_rucio: RealRucio):
    # given two files that cannot be read from the CERN tape
    name, rows = real_rucio.add_dataset(files=6)
    stuck = sorted(row["name"] for row in rows[:2])
    for file_name in stuck:
        real_rucio.fail(file_name, CERN_TAPE)
    backend = real_rucio.backend()
    (rule_id,) = backend.create_rule(stage_request(name, source_replica_expression="istape=True"))
    wait_for(lambda: backend.get_rule(rule_id).locks_stuck_cnt == 2, what="two stuck locks")
    stuck_locks = [lock for lock in backend.list_locks(rule_id) if lock.state == "STUCK"]

    # when
    restage_ids = backend.restage(
        rule_id=rule_id, files=[(lock.scope, lock.name) for lock in stuck_locks], comment="idds processing 7 restage 1"
    )

    # then
    assert sorted(lock.name for lock in stuck_locks) == stuck
    assert {lock.source for lock in stuck_locks} == {CERN_TAPE}
    restaged = [real_rucio.wait_rule(rule, state="OK") for rule in restage_ids]
    assert {rule["source_replica_expression"] for rule in restaged} == {f"istape=True\\{CERN_TAPE}"}
    assert {(rule["did_type"], rule["grouping"], rule["rse_expression"]) for rule in restaged} == {
        ("FILE", "NONE", DISK)
    }
    assert {event["source"] for event in real_rucio.events(set(stuck)) if event["state"] == "OK"} == {BNL_TAPE}
    # Rucio turns every lock of the file on the RSE OK when it lands: the main rule's locks heal too,
    # while the rule itself stays STUCK until Rucio's judge-repairer looks at it.
    main = wait_for(lambda: backend.get_rule(rule_id).locks_ok_cnt == 6 and backend.get_rule(rule_id), what="healed")
    assert (main.state, main.locks_stuck_cnt) == ("STUCK", 0)
    assert {lock.state for lock in backend.list_locks(rule_id)} == {"OK"}


def test_it_restages_the_same_files_twice_with_a_varied_expression(real_rucio: RealRucio):
    # given a first re-stage rule of two files, still live
    name, rows = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    backend = real_rucio.backend()
    files = [(SCOPE, row["name"]) for row in rows]
    first = backend.create_rule(
        backend.restage_request(files=files, rse_expression=DISK, avoid_source=CERN_TAPE, comment="idds p restage 1")
    )

    # when
    second = backend.create_rule(
        backend.restage_request(files=files, rse_expression=DISK, avoid_source=BNL_TAPE, comment="idds p restage 2")
    )

    # then
    assert set(first).isdisjoint(second)
    rules = [real_rucio.root.get_replication_rule(rule) for rule in second]
    assert {rule["rse_expression"] for rule in rules} == {f"({DISK})"}
    assert {rule["comments"] for rule in rules} == {"idds p restage 2"}


def test_it_deletes_a_rule_and_accepts_deleting_it_again(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    backend = real_rucio.backend()
    (rule_id,) = backend.create_rule(stage_request(name))

    # when
    backend.delete_rule(rule_id)
    backend.delete_rule(rule_id)

    # then: Rucio keeps a deleted rule for an hour, marked by the service
    rule = real_rucio.root.get_replication_rule(rule_id)
    assert rule["comments"] == f"{DELETED_MARK}idds processing 7"
    assert rule["expires_at"] <= datetime.utcnow() + timedelta(hours=1)


def test_it_revives_its_deleted_rule_when_the_request_is_resubmitted(real_rucio: RealRucio):
    # given a request aborted (its rule deleted), then resubmitted as a new processing
    name, _ = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    backend = real_rucio.backend()
    (aborted,) = backend.create_rule(stage_request(name, comment="idds processing 7"))
    backend.delete_rule(aborted)

    # when
    (resubmitted,) = backend.create_rule(stage_request(name, comment="idds processing 8", lifetime=3 * 86400))

    # then
    rule = real_rucio.root.get_replication_rule(resubmitted)
    assert resubmitted == aborted
    assert rule["comments"] == "idds processing 8"
    assert rule["expires_at"] >= datetime.utcnow() + timedelta(days=2)


def test_it_sees_a_rule_of_ten_thousand_files_start_in_inject_with_no_locks(real_rucio: RealRucio):
    # given (the judge-injector held: injecting 10,000 locks takes minutes on a shared test machine)
    name, _ = real_rucio.add_dataset(files=10_000)
    real_rucio.skip_dataset(name)
    real_rucio.hold_injection(name)
    backend = real_rucio.backend()

    # when
    (rule_id,) = backend.create_rule(stage_request(name))
    injected = backend.get_rule(rule_id)
    no_locks = list(backend.list_locks(rule_id))

    # then: a live rule with no locks yet, not an unknown one
    assert (injected.state, injected.locks_replicating_cnt, no_locks) == ("INJECT", 0, [])
    assert backend.create_rule(stage_request(name)) == [rule_id]


def test_it_sees_a_stuck_lock_turn_ok_when_rucio_repairs_it(real_rucio: RealRucio):
    # given
    name, rows = real_rucio.add_dataset(files=3, replicas=(CERN_TAPE,))
    file_name = rows[0]["name"]
    real_rucio.fail(file_name, CERN_TAPE)
    real_rucio.recover(file_name, after_seconds=1800)
    backend = real_rucio.backend()

    # when
    (rule_id,) = backend.create_rule(stage_request(name))
    stuck = wait_for(
        lambda: [lock for lock in backend.list_locks(rule_id) if lock.state == "STUCK"], what="a stuck lock"
    )
    healed = wait_for(lambda: backend.get_rule(rule_id).locks_ok_cnt == 3 and backend.get_rule(rule_id), what="OK")

    # then
    assert [(lock.name, lock.source) for lock in stuck] == [(file_name, CERN_TAPE)]
    assert healed.locks_stuck_cnt == 0
    assert {lock.state for lock in backend.list_locks(rule_id)} == {"OK"}


def test_it_refuses_a_source_expression_that_selects_no_rse_with_a_clear_error(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=1)

    # when
    with pytest.raises(PermanentError) as refused:
        real_rucio.backend().create_rule(stage_request(name, source_replica_expression="NO-SUCH_DATATAPE"))

    # then
    assert "source_replica_expression 'NO-SUCH_DATATAPE' is invalid: it selects no Rucio RSE" in str(refused.value)
    assert list(real_rucio.root.list_did_rules(SCOPE, name)) == []


def test_it_reports_a_bad_destination_expression_as_a_permanent_error(real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=1)

    # when
    with pytest.raises(PermanentError) as refused:
        real_rucio.backend().create_rule(stage_request(name, rse_expression="NO-SUCH_DATADISK"))

    # then
    assert "Rucio refused creating a rule to NO-SUCH_DATADISK" in str(refused.value)


def test_it_reports_an_unknown_dataset_as_a_permanent_error_naming_it(real_rucio: RealRucio):
    # when
    with pytest.raises(PermanentError) as refused:
        real_rucio.backend().list_files(SCOPE, "data15_13tev.99999999.physics_main.daq.raw")

    # then
    assert str(refused.value).startswith(f"dataset {SCOPE}:data15_13tev.99999999.physics_main.daq.raw not found")


@pytest.mark.parametrize("action", ["get_rule", "list_locks"])
def test_it_reports_an_unknown_rule_as_a_permanent_error(real_rucio: RealRucio, action: str):
    # given
    backend = real_rucio.backend()

    # when
    with pytest.raises(PermanentError) as refused:
        list(getattr(backend, action)("0123456789abcdef0123456789abcdef") or [])

    # then
    assert str(refused.value).startswith("Rucio rule 0123456789abcdef0123456789abcdef not found")


@pytest.mark.parametrize("action", ["get_rule", "list_locks", "delete_rule"])
def test_it_refuses_a_malformed_rule_id_instead_of_retrying_rucios_500(real_rucio: RealRucio, action: str):
    # given
    backend = real_rucio.backend()

    # when
    with pytest.raises(PermanentError) as refused:
        list(getattr(backend, action)("not-a-rule") or [])

    # then
    assert "Rucio rule id 'not-a-rule' is malformed" in str(refused.value)


def test_it_reports_an_unreachable_server_as_transient():
    # given
    backend = RucioBackend(rucio_host=f"http://127.0.0.1:{free_port()}", account="idds", username="i", password="s")

    # when
    with pytest.raises(TransientError) as failed:
        backend.list_files(SCOPE, "anything")

    # then
    assert "listing the files of" in str(failed.value)


def test_it_reports_rejected_credentials_without_crashing(real_rucio: RealRucio):
    # given an account with no cached token (rucio-clients keeps tokens per account in /tmp/<user>/.rucio_<account>)
    backend = real_rucio.backend(account="ghost", username="ghost", password="wrong")

    # when
    with pytest.raises(TransientError) as failed:
        backend.list_files(SCOPE, "anything")

    # then
    assert "Cannot authenticate" in str(failed.value)


def test_an_oidc_backend_presents_the_bearer_token_a_token_agent_keeps(monkeypatch, tmp_path, real_rucio: RealRucio):
    # given an account whose only token is in the file a token agent keeps fresh (WLCG bearer token
    # discovery: BEARER_TOKEN_FILE), issued by the real server, and nothing in the client's token cache
    name, _ = real_rucio.add_dataset(files=3)
    account = f"oidc{uuid.uuid4().hex[:8]}"
    real_rucio.root.add_account(account, "SERVICE", "oidc@example.org")
    real_rucio.root.add_identity(account, account, "USERPASS", "oidc@example.org", password="secret")
    issued = requests.get(
        f"{real_rucio.url}/auth/userpass",
        headers={"X-Rucio-Account": account, "X-Rucio-Username": account, "X-Rucio-Password": "secret"},
        timeout=30,
    )
    token_file = tmp_path / "bt_u0"
    token_file.write_text(issued.headers["X-Rucio-Auth-Token"])
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(token_file))
    backend = real_rucio.backend(
        account=account,
        auth_type="oidc",
        username=None,
        password=None,
        creds={"oidc_scope": "openid profile", "oidc_audience": "rucio"},
    )

    # when
    files = backend.list_files(SCOPE, name)

    # then the OIDC client authenticated with that token, with the scope and audience it was given
    assert len(files) == 3
    assert backend.client.auth_type == "oidc"
    assert (backend.client.creds["oidc_scope"], backend.client.creds["oidc_audience"]) == ("openid profile", "rucio")


def test_it_is_configured_by_the_django_settings(settings, real_rucio: RealRucio):
    # given
    name, _ = real_rucio.add_dataset(files=4)
    real_rucio.configure(settings, staging=False)

    # when
    backend = RucioBackend.from_settings()

    # then
    assert len(backend.list_files(SCOPE, name)) == 4


def test_a_deployment_without_istape_restages_from_the_tapes_rucio_knows_by_type(settings, real_rucio: RealRucio):
    # given a deployment that marks tapes only by Rucio's built-in RSE type
    name, rows = real_rucio.add_dataset(files=2)
    real_rucio.skip_dataset(name)
    real_rucio.configure(settings, staging=False, IDDS_RUCIO_TAPE_EXPRESSION="rse_type=TAPE")
    backend = RucioBackend.from_settings()
    files = [(SCOPE, row["name"]) for row in rows]

    # when
    rule_ids = backend.create_rule(
        backend.restage_request(files=files, rse_expression=DISK, avoid_source=CERN_TAPE, comment="idds p restage 1")
    )

    # then the real server took the expression and resolves it to the other tape only
    rules = [real_rucio.root.get_replication_rule(rule) for rule in rule_ids]
    assert {rule["source_replica_expression"] for rule in rules} == {f"rse_type=TAPE\\{CERN_TAPE}"}
    resolved = {rse["rse"] for rse in real_rucio.root.list_rses(f"rse_type=TAPE\\{CERN_TAPE}")}
    assert resolved == {BNL_TAPE}


def test_the_service_stages_through_rucio_and_restages_a_stuck_file_from_the_other_tape(
    celery_worker, settings, api, real_rucio: RealRucio
):
    # given a dataset whose first file cannot be read from the CERN tape
    name, rows = real_rucio.add_dataset(files=12)
    stuck = rows[0]["name"]
    real_rucio.fail(stuck, CERN_TAPE)
    real_rucio.configure(settings)
    body = {
        "request_type": 2,
        "scope": SCOPE,
        "name": name,
        "requester": "panda",
        "request_metadata": {
            "workload_id": 4242,
            "src_rse": CERN_TAPE,
            "dest_rse": DISK,
            # Long enough for the stuck file to fail before the re-stage is due on a loaded machine (the
            # re-stage avoids the source only once it knows it), short enough for a test.
            "max_waiting_time": 30,
        },
    }

    # when
    response = api.post("/api/v1/requests/", body, format="json")

    # then
    assert response.status_code == 201, response.content
    request_id = response.json()["request_id"]
    request = wait_for(
        lambda: Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).first(),
        timeout=200,
        what="the request finished",
    )
    batches = [
        [entry["name"] for entry in body["files"]]
        for body in Message.objects.filter(request_id=request.pk, msg_type="file_stagein")
        .order_by("id")
        .values_list("body", flat=True)
    ]
    announced = [file_name for batch in batches for file_name in batch]
    assert sorted(announced) == sorted(row["name"] for row in rows)
    processing = Processing.objects.get(transform__request_id=request.pk)
    groups = processing.processing_metadata["rules"]
    assert [group["kind"] for group in groups] == ["main", "restage"]
    assert groups[1]["avoid_source"] == CERN_TAPE
    landed = [event for event in real_rucio.events({row["name"] for row in rows}) if event["state"] == "OK"]
    assert [event["source"] for event in landed if event["name"] == stuck] == [BNL_TAPE]
    # Rucio's lock listing has no change time: within one poll the order is Rucio's, but a file
    # announced in a later message never landed before one announced earlier.
    first_landing = {name: index for index, name in enumerate(dict.fromkeys(event["name"] for event in landed))}
    spans = [[first_landing[name] for name in batch if name != stuck] for batch in batches]
    spans = [span for span in spans if span]
    assert all(max(earlier) < min(later) for earlier, later in zip(spans, spans[1:], strict=False))
