"""The fast path of staging through Rucio: the real Rucio server's Hermes sends the transfer tool's
``transfer-done`` / ``transfer-failed`` messages to a real ActiveMQ; the recorder stores them; polls
take landed files from them and list a rule's locks only when its counters disagree."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from django.db import connection

from carousel.backends.base import RuleRequest
from carousel.models import RucioTransferEvent
from carousel.rucio_events import EventRecorder, parse_message
from requests_app.models import Message, Processing, Request
from requests_app.models.statuses import RequestStatus
from tests.carousel.rucio_server import (
    BNL_TAPE,
    CERN_TAPE,
    DISK,
    SCOPE,
    RealRucio,
)
from tests.conftest import wait_for
from tools.brokers import ActiveMQBroker
from tools.rucio_server import start_hermes, stop_process
from tools.servers import free_port

# A queue: what Hermes sends while no recorder is subscribed waits for it (a deployment would use
# a durable subscription or an ActiveMQ virtual topic for the same reason).
DESTINATION = "/queue/rucio.events"


@pytest.fixture(scope="module")
def hermes_broker(real_rucio: RealRucio, tmp_path_factory) -> Iterator[str]:
    """A private ActiveMQ and Rucio's Hermes daemon sending the test server's messages to it."""
    broker = ActiveMQBroker(free_port(), tmp_path_factory.mktemp("rucio-activemq"))
    with broker:
        hermes = start_hermes(real_rucio.deployment.server, broker=broker.host_and_port, destination=DESTINATION)
        try:
            yield broker.host_and_port
        finally:
            stop_process(hermes)


@pytest.fixture
def recorder(hermes_broker: str, transactional_db) -> Iterator[EventRecorder]:
    """``carousel_rucio_events``' recorder, running in a thread for the test."""
    recorder = EventRecorder(broker=hermes_broker, destination=DESTINATION)
    stop = threading.Event()

    def run() -> None:
        try:
            recorder.run(stop)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield recorder
    stop.set()
    thread.join(timeout=30)


def _stage(api, name: str, workload_id: int) -> Request:
    body = {
        "request_type": 2,
        "scope": SCOPE,
        "name": name,
        "requester": "panda",
        # The stuck file fails before the re-stage is due, even on a loaded machine.
        "request_metadata": {"workload_id": workload_id, "dest_rse": DISK, "max_waiting_time": 30},
    }
    response = api.post("/api/v1/requests/", body, format="json")
    assert response.status_code == 201, response.content
    request_id = response.json()["request_id"]
    return wait_for(
        lambda: Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).first(),
        timeout=200,
        what="the request finished",
    )


def _announced(request: Request) -> list[str]:
    bodies = Message.objects.filter(request_id=request.pk, msg_type="file_stagein").values_list("body", flat=True)
    return [entry["name"] for body in bodies for entry in body["files"]]


def test_it_reads_only_transfer_outcomes_from_hermes_messages():
    # given Hermes' JSON for a transfer, a rule and something that is not JSON
    done = {
        "event_type": "transfer-done",
        "payload": {"scope": SCOPE, "name": "f1", "dst-rse": DISK, "src-rse": CERN_TAPE},
        "created_at": "2026-11-30 12:00:00.123456",
    }
    rule = {"event_type": "RULE_OK", "payload": {"scope": SCOPE, "name": "ds", "rule_id": "x"}, "created_at": ""}

    # when
    event = parse_message(json.dumps(done))

    # then
    assert (event.name, event.rse, event.source, event.state) == ("f1", DISK, CERN_TAPE, "OK")
    assert event.created_at.isoformat() == "2026-11-30T12:00:00.123456+00:00"
    assert parse_message(json.dumps(rule)) is None
    assert parse_message(b"not json") is None


def test_hermes_sends_the_transfer_outcomes_the_recorder_records(real_rucio: RealRucio, recorder: EventRecorder):
    # given a dataset whose last file cannot be read from the CERN tape (and no other tape in the rule)
    name, rows = real_rucio.add_dataset(files=5)
    real_rucio.fail(rows[-1]["name"], CERN_TAPE)
    backend = real_rucio.backend()

    # when a rule stages it from the CERN tape
    backend.create_rule(
        RuleRequest(dids=((SCOPE, name),), rse_expression=DISK, source_replica_expression=CERN_TAPE, comment="events")
    )

    # then Rucio's own messages arrive through Hermes and the broker
    names = {row["name"] for row in rows}
    events = wait_for(
        lambda: (found := list(RucioTransferEvent.objects.filter(name__in=names))) and len(found) == 5 and found,
        timeout=120,
        what="five transfer events",
    )
    assert {(event.name, event.state) for event in events} == {
        *((row["name"], "OK") for row in rows[:-1]),
        (rows[-1]["name"], "FAILED"),
    }
    assert {(event.scope, event.rse, event.source) for event in events} == {(SCOPE, DISK, CERN_TAPE)}
    assert all(event.created_at is not None for event in events)


def test_the_service_takes_landed_files_from_events_and_lists_locks_only_for_a_stuck_one(
    celery_worker, settings, api, real_rucio: RealRucio, recorder: EventRecorder
):
    # given a dataset whose first file cannot be read from the CERN tape, and the fast path on
    # (a grace far beyond the test: only a stuck lock makes a poll list the dataset rule's locks)
    name, rows = real_rucio.add_dataset(files=12)
    stuck = rows[0]["name"]
    real_rucio.fail(stuck, CERN_TAPE)
    real_rucio.configure(settings, IDDS_RUCIO_EVENTS=True, IDDS_RUCIO_EVENTS_GRACE_SECONDS=3600)

    # when
    request = _stage(api, name, 4343)

    # then every file was announced, the stuck one after a re-stage from the other tape
    assert sorted(_announced(request)) == sorted(row["name"] for row in rows)
    groups = Processing.objects.get(transform__request_id=request.pk).processing_metadata["rules"]
    assert [group["kind"] for group in groups] == ["main", "restage"]
    assert groups[1]["avoid_source"] == CERN_TAPE
    # the dataset rule's locks were listed once, when its counters showed the stuck lock
    assert groups[0]["listings"] == 1
    # and Rucio's message of the stuck file's landing says it came from the other tape (the re-stage
    # rule's locks are listed, so the request may finish before Hermes has sent that message)
    landed = wait_for(
        lambda: list(RucioTransferEvent.objects.filter(name=stuck, state="OK").values_list("source", flat=True)),
        timeout=60,
        what="the stuck file's transfer-done event",
    )
    assert landed == [BNL_TAPE]


def test_polling_stays_the_safety_net_when_no_event_arrives(celery_worker, settings, api, real_rucio: RealRucio):
    # given the fast path on but no recorder running (every message lost), a short grace
    name, rows = real_rucio.add_dataset(files=6)
    real_rucio.configure(settings, IDDS_RUCIO_EVENTS=True, IDDS_RUCIO_EVENTS_GRACE_SECONDS=1)

    # when
    request = _stage(api, name, 4444)

    # then the files landed all the same, found by listing the rule's locks once its counters were behind
    assert sorted(_announced(request)) == sorted(row["name"] for row in rows)
    groups = Processing.objects.get(transform__request_id=request.pk).processing_metadata["rules"]
    assert groups[0]["listings"] >= 1
    assert not RucioTransferEvent.objects.filter(name__in=[row["name"] for row in rows]).exists()
