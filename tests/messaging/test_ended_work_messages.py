"""Messages as deployed consumers read them (docs/messages.md): every end of the work is a "Closed"
collection message, with what failed in ``error``/``output``; file entries carry the original's id keys; the
STOMP frames carry the original's headers. Checked with the reference consumer on a private ActiveMQ."""

# The conductor fixtures are imported from their module, so pytest sees them as redefined arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from carousel.models import SimLock
from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create
from requests_app.models import Collection, Content, Message, Request
from requests_app.models.statuses import CollectionRelationType, CollectionStatus, RequestStatus
from requests_app.services.requests import request_abort
from tests.conftest import wait_for
from tools.consumer import StompSource

from .conftest import RunningConsumer
from .test_conductor_delivery import all_delivered, keep_delivering, stage_in, stomp_conductor, use_sinks  # noqa: F401

SELECTOR = "vo = 'atlas' AND from_idds = 'true' AND ttl = '43200000' AND msg_type LIKE 'collection_%'"


@pytest.fixture
def consumer(running_activemq, destination, tmp_path) -> Iterator[Callable[..., RunningConsumer]]:
    """The reference consumer on the test's topic; ``selector`` filters on the STOMP headers broker-side."""
    started: list[RunningConsumer] = []

    def start(selector: str | None = None) -> RunningConsumer:
        name = f"ended-{uuid.uuid4().hex[:8]}"
        source = StompSource([("127.0.0.1", running_activemq.port)], destination, durable=name, selector=selector)
        running = RunningConsumer(source, tmp_path / f"{name}.jsonl")
        started.append(running)
        return running

    yield start
    for running in started:
        if running.summary is None:
            running.stop()


def bodies(consumer: RunningConsumer, msg_type: str) -> list[dict]:
    lines = [json.loads(line) for line in consumer.jsonl.read_text().splitlines() if line]
    return [line["body"] for line in lines if line["msg_type"] == msg_type]


def delivered(request_id: int) -> None:
    keep_delivering(
        lambda: (
            Request.objects.get(pk=request_id).is_terminal
            and Message.objects.filter(request_id=request_id, msg_type__startswith="collection_").exists()
            and all_delivered(request_id)
        ),
        what=f"request {request_id} ended and delivered",
    )


def output_of(request_id: int) -> Collection:
    return Collection.objects.get(request_id=request_id, relation_type=CollectionRelationType.OUTPUT)


def test_a_stagein_with_failed_files_is_closed_for_the_consumer_with_the_failures_in_error(
    celery_worker, stomp_conductor, consumer, settings, api
):
    # given: stuck files that fail for good
    reader = consumer()
    settings.IDDS_TAPE_TIME_SCALE = 1e6
    spec = DatasetSpec("sim", f"fail.{uuid.uuid4().hex[:8]}", 20, 20 * 2_000_000_000)
    catalogue_create([spec], config=TapeConfig(libraries=2, drives_per_library=1, stuck_fraction=0.3), seed=7)
    body = {
        "request_type": 2,
        "scope": spec.scope,
        "name": spec.name,
        "request_metadata": {"workload_id": 31, "dest_rse": "SIM_DATADISK", "max_extra_rules": 0},
    }
    request_id = api.post("/api/v1/requests/", body, format="json").json()["request_id"]

    # when
    delivered(request_id)

    # then: the consumer sees Closed; the service keeps SubClosed / SubFinished for itself
    reader.wait_for_messages(Message.objects.filter(request_id=request_id).count())
    (closing,) = bodies(reader, "collection_stagein")
    stuck = sorted(
        SimLock.objects.filter(fails=True, file__dataset__name=spec.name).values_list("file__name", flat=True)
    )
    assert stuck
    assert closing["collections"] == [{"scope": spec.scope, "name": spec.name, "status": "Closed"}]
    assert sorted(closing["error"]["failed_files"]) == stuck
    assert closing["error"]["status"] == "SubFinished"
    assert sorted(closing["output"]["failed_files"]) == stuck
    assert output_of(request_id).status == CollectionStatus.SUBCLOSED
    assert Request.objects.get(pk=request_id).status == RequestStatus.SUBFINISHED


def test_a_cancelled_stagein_is_closed_for_the_consumer(celery_worker, stomp_conductor, consumer, stage_in, settings):
    # given: a request still staging on a slow tape
    reader = consumer()
    request_id = stage_in(20, workload_id=32)
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    wait_for(lambda: Collection.objects.filter(request_id=request_id).exists(), what="collections planned")

    # when
    request_abort(request=Request.objects.get(pk=request_id))
    delivered(request_id)

    # then
    reader.wait_for_messages(Message.objects.filter(request_id=request_id).count())
    closing = [b for b in bodies(reader, "collection_stagein") if b["request_id"] == request_id]
    assert len(closing) == 1
    assert closing[0]["collections"][0]["status"] == "Closed"
    assert closing[0]["error"]["status"] == "Cancelled"
    assert Request.objects.get(pk=request_id).status == RequestStatus.CANCELLED
    assert output_of(request_id).status == CollectionStatus.CANCELLED


def test_a_cancelled_hpo_study_is_closed_for_the_consumer(celery_worker, stomp_conductor, consumer, api):
    # given: a study with its first points
    reader = consumer()
    body = {
        "request_type": 4,
        "request_metadata": {"workload_id": 33, "method": "random", "opt_space": {"x": [0, 1]}, "max_points": 50},
    }
    request_id = api.post("/api/v1/requests/", body, format="json").json()["request_id"]
    wait_for(
        lambda: Content.objects.filter(collection__request_id=request_id).exists(), what="the study's first points"
    )

    # when
    request_abort(request=Request.objects.get(pk=request_id))
    delivered(request_id)

    # then
    reader.wait_for_messages(Message.objects.filter(request_id=request_id).count())
    (closing,) = bodies(reader, "collection_hyperparameteropt")
    assert closing["collections"][0]["status"] == "Closed"
    assert closing["error"]["status"] == "Cancelled"
    assert closing["workload_id"] == 33


def test_file_entries_carry_the_original_id_keys(celery_worker, stomp_conductor, consumer, stage_in):
    # given
    reader = consumer()
    request_id = stage_in(5, workload_id=34)

    # when
    delivered(request_id)

    # then: every announced file names its content row
    reader.wait_for_messages(Message.objects.filter(request_id=request_id).count())
    entries = [f for b in bodies(reader, "file_stagein") for f in b["files"]]
    ids = dict(Content.objects.filter(collection=output_of(request_id)).values_list("name", "id"))
    assert len(entries) == 5
    for entry in entries:
        assert entry["content_id"] == entry["map_id"] == ids[entry["name"]]
        assert entry["external_coll_id"] is None
        assert entry["external_content_id"] is None


def test_frames_carry_the_original_headers_a_broker_selector_can_match(
    celery_worker, stomp_conductor, consumer, stage_in
):
    # given: a consumer whose broker-side selector needs vo, from_idds, ttl and msg_type
    selective = consumer(SELECTOR)

    # when
    request_id = stage_in(4, workload_id=35)
    delivered(request_id)

    # then: only the collection message passes the selector, so every header was there
    selective.wait_for_messages(1)
    assert selective.recorder.messages_by_type == {"collection_stagein": 1}
