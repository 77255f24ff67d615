"""The real conductor, run by a real Celery worker, delivering outbox rows to ActiveMQ and Redis.

Stage-in requests (the carousel work type over the simulated tape system) produce the messages;
the reference consumer plays the workload system. Between attempts the test plays Celery beat,
asking for a delivery run every half second.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.db import transaction

from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create
from requests_app.handoffs import TaskName, send_now
from requests_app.models import Content, Message, Request
from requests_app.models.statuses import CollectionRelationType, ContentStatus, MessageStatus, RequestStatus
from requests_app.services import conductor
from requests_app.services.messages import file_entry, file_messages, messages_write
from tests.conftest import wait_for
from tools.brokers import STOMP_MAX_FRAME_BYTES

FILE_BYTES = 2_000_000_000


@pytest.fixture
def use_sinks(settings) -> Iterator[Callable[..., None]]:
    """Point the conductor at the given sinks; fresh sink objects before and after the test."""

    def use(names: list[str], **overrides: object) -> None:
        settings.IDDS_MESSAGE_SINKS = names
        for key, value in overrides.items():
            setattr(settings, key, value)
        _reset_sinks()

    yield use
    _reset_sinks()


def _reset_sinks() -> None:
    for sink in conductor.configured_sinks():
        sink.close()
    conductor.configured_sinks.cache_clear()


@pytest.fixture
def stomp_conductor(use_sinks, running_activemq, destination) -> None:
    use_sinks(
        ["db", "stomp"],
        IDDS_STOMP_HOSTS=[running_activemq.host_and_port],
        IDDS_STOMP_DESTINATION=destination,
        IDDS_STOMP_USER="",
        IDDS_STOMP_PASSWORD="",
    )


@pytest.fixture
def stream_conductor(use_sinks, running_redis, stream) -> None:
    use_sinks(["redis"], IDDS_STREAM_REDIS_URL=running_redis.url, IDDS_STREAM_NAME=stream)


@pytest.fixture
def stage_in(settings, api) -> Callable[..., int]:
    """Submit a stage-in request for a fresh simulated tape dataset of ``files`` files."""
    settings.IDDS_TAPE_TIME_SCALE = 0.0

    def submit(files: int, *, workload_id: int = 4242) -> int:
        spec = DatasetSpec("sim", f"msg.{uuid.uuid4().hex[:10]}", files, files * FILE_BYTES)
        catalogue_create([spec], config=TapeConfig(libraries=2, drives_per_library=1), seed=7)
        body = {
            "request_type": 2,
            "scope": spec.scope,
            "name": spec.name,
            "requester": "panda",
            "request_metadata": {"workload_id": workload_id, "dest_rse": "SIM_DATADISK"},
        }
        response = api.post("/api/v1/requests/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()["request_id"]

    return submit


def keep_delivering(predicate: Callable[[], object], *, timeout: float = 120.0, what: str = "") -> object:
    """Wait for ``predicate`` while asking the worker for delivery runs (what beat does)."""

    def tick() -> object:
        send_now(TaskName.MESSAGES_DELIVER)
        return predicate()

    return wait_for(tick, timeout=timeout, interval=0.5, what=what)


def all_delivered(*request_ids: int) -> bool:
    return not Message.objects.filter(request_id__in=request_ids).exclude(status=MessageStatus.DELIVERED).exists()


def output_file_names(request_id: int) -> set[str]:
    return set(
        Content.objects.filter(
            collection__request_id=request_id, collection__relation_type=CollectionRelationType.OUTPUT
        ).values_list("name", flat=True)
    )


def consumed_file_names(consumer, workload_id: int) -> list[str]:
    return [name.split(":", 1)[1] for name in consumer.recorder.files_by_workload.get(workload_id, [])]


def finished(request_id: int) -> bool:
    return Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).exists()


def test_every_file_of_a_stagein_request_reaches_the_stomp_consumer(
    celery_worker, stomp_conductor, stomp_consumer, stage_in
):
    # given
    consumer = stomp_consumer()

    # when
    request_id = stage_in(40)

    # then
    keep_delivering(lambda: finished(request_id) and all_delivered(request_id), what="request delivered")
    expected = Message.objects.filter(request_id=request_id).count()
    consumer.wait_for_messages(expected)
    consumer.stop()
    received = consumed_file_names(consumer, 4242)
    assert sorted(received) == sorted(output_file_names(request_id))
    assert consumer.recorder.messages_by_type["collection_stagein"] == 1
    assert set(Message.objects.filter(request_id=request_id).values_list("delivered_to", flat=True)[:1][0]) == {
        "db",
        "stomp",
    }


def test_a_broker_outage_in_the_middle_loses_nothing_and_dedup_leaves_each_file_once(
    celery_worker, stomp_conductor, stomp_consumer, stage_in, running_activemq
):
    # given: one request delivered, then the broker goes down and a second request arrives
    consumer = stomp_consumer()
    first = stage_in(30, workload_id=1)
    keep_delivering(lambda: finished(first) and all_delivered(first), what="first request delivered")
    running_activemq.stop()
    second = stage_in(30, workload_id=2)

    # when: its messages fail while the broker is down, then the broker comes back
    keep_delivering(
        lambda: Message.objects.filter(request_id=second, status=MessageStatus.NEW).exclude(last_error="").exists(),
        what="a delivery attempt during the outage",
    )
    waiting = Message.objects.filter(request_id=second, status=MessageStatus.NEW).exclude(last_error="").first()
    assert "stomp" in waiting.last_error
    # an outage is not the messages' fault: no attempt is used up, so none can end Failed
    assert waiting.attempts == 0
    running_activemq.start()
    keep_delivering(lambda: finished(second) and all_delivered(first, second), what="everything delivered")

    # then: every file of both requests, each exactly once after dropping repeats
    expected = Message.objects.filter(request_id__in=[first, second]).count()
    consumer.wait_for_messages(expected)
    consumer.stop()
    for request_id, workload_id in ((first, 1), (second, 2)):
        received = consumed_file_names(consumer, workload_id)
        assert sorted(received) == sorted(output_file_names(request_id))
    recorded = consumer.recorded_ids()
    assert len(recorded) == len(set(recorded)) == expected


def test_a_message_the_broker_keeps_refusing_ends_failed_with_its_reason(
    celery_worker, stomp_conductor, stomp_consumer, stage_in, settings
):
    # given: a finished request, and a file message bigger than the broker's frame limit
    settings.IDDS_MESSAGE_MAX_ATTEMPTS = 3
    consumer = stomp_consumer()
    request_id = stage_in(5)
    keep_delivering(lambda: finished(request_id) and all_delivered(request_id), what="request delivered")
    request = Request.objects.get(pk=request_id)
    transform = request.transforms.get()
    output = transform.collections.get(relation_type=CollectionRelationType.OUTPUT)
    long_path = "/" + "p" * (STOMP_MAX_FRAME_BYTES // 2000)
    files = [file_entry("sim", f"huge.{i}", long_path, ContentStatus.AVAILABLE) for i in range(2000)]

    # when
    with transaction.atomic():
        [poison] = messages_write(
            file_messages(transform=transform, work_type_name="stagein", collection=output, files=files)
        )
    other = stage_in(3, workload_id=99)

    # then: the poison ends Failed after 3 tries with the broker's reason; other work goes on
    failed = keep_delivering(
        lambda: Message.objects.filter(pk=poison.pk, status=MessageStatus.FAILED).first(),
        what="poison message failed",
    )
    assert failed.attempts == 3
    assert "broker refused" in failed.last_error
    assert "maximum" in failed.last_error
    keep_delivering(lambda: finished(other) and all_delivered(other), what="other request delivered")
    consumer.wait_for_messages(Message.objects.filter(status=MessageStatus.DELIVERED).count())
    consumer.stop()
    assert poison.msg_id not in consumer.recorder.seen


def test_every_file_reaches_a_redis_stream_consumer_group_across_a_redis_restart(
    celery_worker, stream_conductor, stream_consumer, stage_in, running_redis
):
    # given
    consumer = stream_consumer()
    first = stage_in(30, workload_id=1)
    keep_delivering(lambda: finished(first) and all_delivered(first), what="first request delivered")
    running_redis.stop()
    second = stage_in(30, workload_id=2)

    # when
    keep_delivering(
        lambda: Message.objects.filter(request_id=second, status=MessageStatus.NEW).exclude(last_error="").exists(),
        what="a delivery attempt during the outage",
    )
    running_redis.start()
    keep_delivering(lambda: finished(second) and all_delivered(first, second), what="everything delivered")

    # then
    expected = Message.objects.filter(request_id__in=[first, second]).count()
    consumer.wait_for_messages(expected)
    consumer.stop()
    for request_id, workload_id in ((first, 1), (second, 2)):
        assert sorted(consumed_file_names(consumer, workload_id)) == sorted(output_file_names(request_id))
    recorded = consumer.recorded_ids()
    assert len(recorded) == len(set(recorded)) == expected
