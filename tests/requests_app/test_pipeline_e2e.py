"""A request of the test work type carried through every agent by a real Celery worker."""

from __future__ import annotations

import pytest

from requests_app.models import Collection, Content, Event, Message, Processing, Request
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    ContentStatus,
    MessageStatus,
    ProcessingStatus,
    RequestStatus,
)
from tests.conftest import wait_for


def submit(api, **metadata) -> int:
    response = api.post(
        "/api/v1/requests/",
        {"request_type": 99, "workload_id": 4242, "request_metadata": {"files_per_poll": 7, **metadata}},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["request_id"]


def test_it_carries_a_request_through_every_agent_to_finished_with_its_messages(celery_worker, api):
    # given / when
    request_id = submit(api, files=25)

    # then
    request = wait_for(
        lambda: Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).first(),
        what="request finished",
    )
    output = Collection.objects.get(request=request, relation_type=CollectionRelationType.OUTPUT)
    assert output.status == CollectionStatus.CLOSED
    assert (output.total_files, output.processed_files, output.failed_files) == (25, 25, 0)
    assert Content.objects.filter(collection=output, status=ContentStatus.AVAILABLE).count() == 25
    assert Processing.objects.get(request=request).status == ProcessingStatus.FINISHED
    wait_for(
        lambda: not Message.objects.filter(request=request).exclude(status=MessageStatus.DELIVERED).exists(),
        what="messages delivered",
    )
    file_messages = Message.objects.filter(request=request, msg_type="file_countdown").order_by("id")
    announced = [f["name"] for m in file_messages for f in m.body["files"]]
    assert announced == [f"file.{i:07d}" for i in range(25)]
    assert all(m.body["workload_id"] == 4242 for m in file_messages)
    closing = Message.objects.get(request=request, msg_type="collection_countdown")
    assert closing.body["collections"][0]["status"] == "Closed"
    moves = list(Event.objects.filter(entity="request", entity_id=request_id).values_list("new_status", flat=True))
    assert moves == [RequestStatus.TRANSFORMING, RequestStatus.FINISHED]


def test_it_ends_subfinished_when_some_files_fail(celery_worker, api):
    request_id = submit(api, files=10, fail_files=[3, 4])

    request = wait_for(
        lambda: Request.objects.filter(pk=request_id, status__in=[RequestStatus.SUBFINISHED]).first(),
        what="request subfinished",
    )
    output = Collection.objects.get(request=request, relation_type=CollectionRelationType.OUTPUT)
    assert (output.processed_files, output.failed_files, output.status) == (8, 2, CollectionStatus.SUBCLOSED)


@pytest.mark.parametrize("outages", [2])
def test_it_retries_transient_poll_failures_and_records_them(celery_worker, api, outages, settings):
    request_id = submit(api, files=3, transient_polls=outages)

    wait_for(
        lambda: Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).exists(),
        timeout=90,
        what="request finished after outages",
    )
    processing = Processing.objects.get(request_id=request_id)
    assert len(processing.errors) == outages
    assert "simulated outage" in processing.errors[0]["error"]
