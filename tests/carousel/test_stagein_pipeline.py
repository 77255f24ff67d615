"""Stage-in requests carried by a real Celery worker over the simulated tape system."""

from __future__ import annotations

from requests_app.models import Collection, Content, Message, Request
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    ContentStatus,
    MessageStatus,
    RequestStatus,
)
from tests.conftest import wait_for


def test_it_stages_a_dataset_and_announces_every_file_once(celery_worker, settings, tape_catalogue, submit_stagein):
    # given
    settings.IDDS_TAPE_TIME_SCALE = 0.0
    (spec,) = tape_catalogue(files=30)

    # when
    request_id = submit_stagein(spec)

    # then
    wait_for(
        lambda: Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).exists(),
        timeout=60,
        what="request finished",
    )
    output = Collection.objects.get(request_id=request_id, relation_type=CollectionRelationType.OUTPUT)
    assert (output.status, output.total_files, output.processed_files) == (CollectionStatus.CLOSED, 30, 30)
    assert Content.objects.filter(collection=output, status=ContentStatus.AVAILABLE).count() == 30
    announced = [
        f["name"]
        for body in Message.objects.filter(request_id=request_id, msg_type="file_stagein").values_list("body", flat=True)
        for f in body["files"]
    ]
    assert sorted(announced) == sorted(Content.objects.filter(collection=output).values_list("name", flat=True))
    assert len(announced) == len(set(announced))
    wait_for(
        lambda: Message.objects.filter(request_id=request_id, msg_type="collection_stagein", status=MessageStatus.DELIVERED).exists(),
        what="collection message delivered",
    )
