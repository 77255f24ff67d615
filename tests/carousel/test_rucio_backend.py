"""The Rucio backend, through the real rucio-clients, against the stand-in Rucio server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from rucio.common.exception import RucioException

from carousel.backends.base import RuleRequest
from carousel.backends.rucio import DELETED_MARK, RucioBackend, restage_source_expression
from requests_app.errors import PermanentError, TransientError
from tests.carousel.rucio_standin import RucioStandIn

SCOPE = "data15_13tev"
DATASET = "data15_13tev.00276262.physics_main.daq.raw"
CERN_TAPE = "CERN-PROD_DATATAPE"
BNL_TAPE = "BNL-OSG2_DATATAPE"
DISK = "CERN-PROD_DATADISK"


@pytest.fixture
def standin() -> Iterator[RucioStandIn]:
    server = RucioStandIn(username="idds", password="secret", stage_seconds=(600, 6 * 3600))
    server.add_rse(CERN_TAPE, istape=True)
    server.add_rse(BNL_TAPE, istape=True)
    server.add_rse(DISK, istape=False)
    server.add_dataset(SCOPE, DATASET, files=20, replicas=[CERN_TAPE, BNL_TAPE])
    with server:
        yield server


@pytest.fixture
def backend(standin: RucioStandIn) -> RucioBackend:
    return RucioBackend(rucio_host=standin.url, account="idds", username="idds", password="secret")


def stage_request(comment: str = "idds processing 7", **overrides: object) -> RuleRequest:
    fields = {
        "dids": ((SCOPE, DATASET),),
        "rse_expression": DISK,
        "source_replica_expression": CERN_TAPE,
        "lifetime": 7 * 86400,
        "grouping": "DATASET",
        "activity": "Staging",
        "comment": comment,
    }
    return RuleRequest(**{**fields, **overrides})


def test_it_lists_the_files_of_a_dataset_with_sizes_and_checksums(backend: RucioBackend, standin: RucioStandIn):
    # given
    expected = standin.datasets[(SCOPE, DATASET)]

    # when
    files = backend.list_files(SCOPE, DATASET)

    # then
    assert [(f.scope, f.name, f.bytes, f.adler32) for f in files] == [
        (f.scope, f.name, f.bytes, f.adler32) for f in expected
    ]
    assert len(files) == 20


def test_it_reads_the_dataset_metadata_with_aware_dates(backend: RucioBackend):
    # when
    meta = backend.get_dataset_metadata(SCOPE, DATASET)

    # then
    assert meta["did_type"] == "DATASET"
    assert meta["length"] == 20
    assert meta["created_at"].tzinfo is UTC


def test_it_creates_a_rule_with_every_requested_parameter(backend: RucioBackend, standin: RucioStandIn):
    # when
    rule_ids = backend.create_rule(stage_request(copies=1))

    # then
    rule = standin.rules[rule_ids[0]]
    assert len(rule_ids) == 1
    assert (rule.scope, rule.name, rule.account) == (SCOPE, DATASET, "idds")
    assert (rule.rse_expression, rule.source_replica_expression, rule.copies) == (DISK, CERN_TAPE, 1)
    assert (rule.grouping, rule.activity, rule.comment) == ("DATASET", "Staging", "idds processing 7")
    assert rule.expires_at == datetime(2015, 6, 8, tzinfo=UTC)
    assert len(rule.locks) == 20


def test_it_returns_the_existing_rule_when_the_same_submit_is_repeated_after_a_crash(
    backend: RucioBackend, standin: RucioStandIn
):
    # given
    first = backend.create_rule(stage_request())
    restarted = RucioBackend(rucio_host=standin.url, account="idds", username="idds", password="secret")

    # when
    second = restarted.create_rule(stage_request())

    # then
    assert second == first
    assert standin.calls["POST /rules"] == 1
    assert len(standin.rules) == 1


def test_it_creates_a_new_rule_when_the_comment_differs(backend: RucioBackend, standin: RucioStandIn):
    # given
    backend.create_rule(stage_request(comment="idds processing 7", rse_expression=DISK))
    standin.add_rse("BNL-OSG2_DATADISK", istape=False)

    # when
    other = backend.create_rule(stage_request(comment="idds processing 8", rse_expression="BNL-OSG2_DATADISK"))

    # then
    assert len(standin.rules) == 2
    assert standin.rules[other[0]].comment == "idds processing 8"


def test_it_adopts_a_rule_given_by_id(backend: RucioBackend, standin: RucioStandIn):
    # given a rule made by someone else (another client of the same Rucio)
    other = RucioBackend(rucio_host=standin.url, account="idds", username="idds", password="secret")
    (rule_id,) = other.create_rule(stage_request(comment=""))

    # when
    info = backend.adopt_rule(rule_id, scope=SCOPE, name=DATASET)

    # then
    assert info.rule_id == rule_id
    assert info.state == "REPLICATING"
    assert info.locks_replicating_cnt == 20


def test_it_refuses_to_adopt_a_rule_of_another_dataset(backend: RucioBackend, standin: RucioStandIn):
    # given
    standin.add_dataset(SCOPE, "data15_13tev.00276954.physics_main.daq.raw", files=3, replicas=[CERN_TAPE])
    (rule_id,) = backend.create_rule(stage_request(dids=((SCOPE, "data15_13tev.00276954.physics_main.daq.raw"),)))

    # when
    with pytest.raises(PermanentError) as refused:
        backend.adopt_rule(rule_id, scope=SCOPE, name=DATASET)

    # then
    assert f"is for {SCOPE}:data15_13tev.00276954.physics_main.daq.raw, not for {SCOPE}:{DATASET}" in str(refused.value)


def test_it_sees_locks_land_one_by_one_as_time_passes(backend: RucioBackend, standin: RucioStandIn):
    # given
    (rule_id,) = backend.create_rule(stage_request())
    delays = sorted(standin.stage_delay(f.name) for f in standin.datasets[(SCOPE, DATASET)])
    halfway = delays[9]
    landed = sum(delay <= halfway for delay in delays)  # 10, unless two files share a delay

    # when
    before = backend.get_rule(rule_id)
    standin.advance(seconds=halfway.total_seconds())
    middle = backend.get_rule(rule_id)
    middle_locks = list(backend.list_locks(rule_id))
    standin.advance(seconds=(delays[-1] - halfway).total_seconds())
    after = backend.get_rule(rule_id)

    # then
    assert (before.state, before.locks_ok_cnt, before.locks_replicating_cnt) == ("REPLICATING", 0, 20)
    assert 0 < landed < 20
    assert (middle.state, middle.locks_ok_cnt, middle.locks_replicating_cnt) == ("REPLICATING", landed, 20 - landed)
    assert sorted(lock.state for lock in middle_locks) == ["OK"] * landed + ["REPLICATING"] * (20 - landed)
    assert {lock.rse for lock in middle_locks} == {DISK}
    assert (after.state, after.locks_ok_cnt) == ("OK", 20)


def test_it_restages_stuck_files_from_another_tape(backend: RucioBackend, standin: RucioStandIn):
    # given two files that cannot be read from the CERN tape
    stuck = [f.name for f in standin.datasets[(SCOPE, DATASET)][:2]]
    for name in stuck:
        standin.make_stuck(name, CERN_TAPE)
    (rule_id,) = backend.create_rule(stage_request())
    standin.advance(days=1)
    stuck_locks = [(lock.scope, lock.name) for lock in backend.list_locks(rule_id) if lock.state == "STUCK"]

    # when
    restage_ids = backend.restage(rule_id=rule_id, files=stuck_locks, comment="idds processing 7 restage 1")
    standin.advance(days=1)

    # then
    assert backend.get_rule(rule_id).state == "STUCK"
    assert sorted(name for _, name in stuck_locks) == sorted(stuck)
    assert len(restage_ids) == 2  # one rule per file DID, as Rucio does
    restaged = [standin.rules[rule] for rule in restage_ids]
    assert {rule.source_replica_expression for rule in restaged} == {f"istape=True\\{CERN_TAPE}"}
    assert {(rule.did_type, rule.grouping, rule.rse_expression) for rule in restaged} == {("FILE", "NONE", DISK)}
    assert [backend.get_rule(rule).state for rule in restage_ids] == ["OK", "OK"]
    assert {lock.source for rule in restaged for lock in rule.locks} == {BNL_TAPE}


def test_it_builds_the_restage_source_expression_from_the_tape_expression():
    # when / then
    assert restage_source_expression(CERN_TAPE) == f"istape=True\\{CERN_TAPE}"
    assert restage_source_expression("A|B", tape_expression="type=TAPE&tier=1") == "(type=TAPE&tier=1)\\(A|B)"
    assert restage_source_expression(None) == "istape=True"


def test_it_deletes_a_rule_and_accepts_deleting_it_again(backend: RucioBackend, standin: RucioStandIn):
    # given
    (rule_id,) = backend.create_rule(stage_request())

    # when
    backend.delete_rule(rule_id)
    backend.delete_rule(rule_id)

    # then: soft-deleted, as in Rucio, and marked by the service
    assert standin.rules[rule_id].comment == f"{DELETED_MARK}idds processing 7"
    assert standin.rules[rule_id].expires_at == standin.now + timedelta(hours=1)
    assert standin.deleted_rule_ids == [rule_id, rule_id]
    assert standin.calls["DELETE /rules"] == 2


def test_it_reports_an_unknown_dataset_as_a_permanent_error_naming_it(backend: RucioBackend):
    # when
    with pytest.raises(PermanentError) as refused:
        backend.list_files(SCOPE, "data15_13tev.99999999.physics_main.daq.raw")

    # then
    assert str(refused.value).startswith(f"dataset {SCOPE}:data15_13tev.99999999.physics_main.daq.raw not found")


def test_it_reports_an_unknown_rule_as_a_permanent_error(backend: RucioBackend):
    # when
    with pytest.raises(PermanentError) as refused:
        backend.get_rule("0123456789abcdef0123456789abcdef")

    # then
    assert str(refused.value).startswith("Rucio rule 0123456789abcdef0123456789abcdef not found")


def test_it_reports_a_bad_rse_expression_as_a_permanent_error(backend: RucioBackend):
    # when
    with pytest.raises(PermanentError) as refused:
        backend.create_rule(stage_request(rse_expression="NO-SUCH_DATADISK"))

    # then
    assert "Rucio refused creating a rule to NO-SUCH_DATADISK" in str(refused.value)


def test_it_reports_an_unreachable_server_as_transient(standin: RucioStandIn):
    # given
    backend = RucioBackend(rucio_host=standin.url, account="idds", username="idds", password="secret")
    standin.stop()

    # when
    with pytest.raises(TransientError) as failed:
        backend.list_files(SCOPE, DATASET)

    # then
    assert "listing the files of" in str(failed.value)


def test_it_reports_a_server_error_as_transient_and_recovers(backend: RucioBackend, standin: RucioStandIn):
    # given
    (rule_id,) = backend.create_rule(stage_request())
    standin.fail_next(1, status=500, exception_class="DatabaseException")

    # when
    with pytest.raises(TransientError) as failed:
        backend.get_rule(rule_id)
    recovered = backend.get_rule(rule_id)

    # then
    assert "Database exception" in str(failed.value)
    assert recovered.rule_id == rule_id


def test_it_authenticates_again_when_its_token_is_no_longer_valid(backend: RucioBackend, standin: RucioStandIn):
    # given
    backend.list_files(SCOPE, DATASET)
    logins = standin.calls["GET /auth"]
    standin.revoke_tokens()

    # when
    files = backend.list_files(SCOPE, DATASET)

    # then
    assert len(files) == 20
    assert standin.calls["GET /auth"] == logins + 1


def test_it_reports_rejected_credentials_without_crashing(standin: RucioStandIn):
    # given
    backend = RucioBackend(rucio_host=standin.url, account="idds", username="idds", password="wrong")

    # when
    with pytest.raises(TransientError) as failed:
        backend.list_files(SCOPE, DATASET)

    # then
    assert "Cannot authenticate" in str(failed.value)


def test_it_is_configured_by_the_django_settings(settings, standin: RucioStandIn):
    # given
    settings.IDDS_RUCIO_HOST = standin.url
    settings.IDDS_RUCIO_AUTH_HOST = standin.url
    settings.IDDS_RUCIO_ACCOUNT = "idds"
    settings.IDDS_RUCIO_AUTH_TYPE = "userpass"
    settings.IDDS_RUCIO_USERNAME = "idds"
    settings.IDDS_RUCIO_PASSWORD = "secret"

    # when
    backend = RucioBackend.from_settings()

    # then
    assert (backend.rucio_host, backend.auth_host, backend.account) == (standin.url, standin.url, "idds")
    assert len(backend.list_files(SCOPE, DATASET)) == 20


def test_it_refuses_an_empty_rucio_host_setting(settings):
    # given
    settings.IDDS_RUCIO_HOST = ""

    # when / then
    with pytest.raises(ImproperlyConfigured, match="IDDS_RUCIO_HOST is empty"):
        RucioBackend.from_settings()


def test_it_answers_a_rule_filter_on_comment_with_a_bare_500_as_real_rucio_does(backend: RucioBackend):
    # given: the stand-in must fail where real Rucio fails, or it hides the bug it was written to catch
    client = backend.client

    # when
    with pytest.raises(RucioException) as failed:
        list(client.list_replication_rules(filters={"comment": "idds processing 7"}))

    # then
    assert "http status code: 500" in str(failed.value)


def test_it_passes_x509_settings_to_the_client_and_refuses_a_missing_certificate(settings, tmp_path):
    # given
    settings.IDDS_RUCIO_HOST = "https://rucio.example.org"
    settings.IDDS_RUCIO_AUTH_TYPE = "x509"
    settings.IDDS_RUCIO_CLIENT_CERT = str(tmp_path / "usercert.pem")
    settings.IDDS_RUCIO_CLIENT_KEY = str(tmp_path / "userkey.pem")
    settings.IDDS_RUCIO_CA_CERT = "/etc/grid-security/certificates"

    # when
    backend = RucioBackend.from_settings()
    with pytest.raises(PermanentError) as refused:
        backend.list_files(SCOPE, DATASET)

    # then
    assert backend.creds == {"client_cert": str(tmp_path / "usercert.pem"), "client_key": str(tmp_path / "userkey.pem")}
    assert (backend.auth_type, backend.ca_cert) == ("x509", "/etc/grid-security/certificates")
    assert "X.509 client certificate not found" in str(refused.value)


def test_it_passes_oidc_settings_to_the_client(settings):
    # given
    settings.IDDS_RUCIO_HOST = "https://rucio.example.org"
    settings.IDDS_RUCIO_AUTH_TYPE = "oidc"
    settings.IDDS_RUCIO_OIDC_SCOPE = "openid profile offline_access"
    settings.IDDS_RUCIO_OIDC_AUDIENCE = "rucio"
    settings.IDDS_RUCIO_OIDC_ISSUER = "wlcg"

    # when
    backend = RucioBackend.from_settings()

    # then
    assert backend.auth_type == "oidc"
    assert backend.creds == {
        "oidc_scope": "openid profile offline_access",
        "oidc_audience": "rucio",
        "oidc_issuer": "wlcg",
    }
