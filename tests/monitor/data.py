"""Data the monitor tests look at: a stage-in-like request with files, and a hostile name."""

from __future__ import annotations

from django.utils import timezone

from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    ContentStatus,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)

HOSTILE = "<script>alert(1)</script>"


def campaign_request(
    *, owner=None, name: str = "data.set", files: int = 30, processed: int = 10, status=RequestStatus.TRANSFORMING
) -> Request:
    """A request with a transform, a processing, an input and an output collection and ``files`` contents."""
    request = Request.objects.create(
        scope="mc23",
        name=name,
        requester="alice",
        owner=owner,
        request_type=RequestType.OTHER,
        workload_id=4242,
        status=status,
    )
    transform = Transform.objects.create(request=request, transform_type=RequestType.OTHER, status=status)
    Processing.objects.create(transform=transform, request=request, status=ProcessingStatus.RUNNING)
    collection = Collection.objects.create(
        transform=transform,
        request=request,
        relation_type=CollectionRelationType.INPUT,
        scope="mc23",
        name=name,
        status=CollectionStatus.OPEN,
        total_files=files,
        processed_files=processed,
        bytes=files * 1000,
        processed_bytes=processed * 1000,
    )
    Collection.objects.create(
        transform=transform,
        request=request,
        relation_type=CollectionRelationType.OUTPUT,
        scope="mc23",
        name=f"{name}.out",
        status=CollectionStatus.OPEN,
        total_files=files,
        processed_files=processed,
    )
    Content.objects.bulk_create(
        Content(
            collection=collection,
            scope="mc23",
            name=f"{name}.file{number:05d}",
            status=ContentStatus.AVAILABLE if number < processed else ContentStatus.NEW,
            bytes=1000,
            status_changed_at=timezone.now(),
        )
        for number in range(files)
    )
    Event.objects.create(
        entity="request", entity_id=request.pk, request=request, old_status=0, new_status=status, reason=f"moved {name}"
    )
    Message.objects.create(
        msg_id=f"m-{request.pk}",
        msg_type="file_stagein",
        request=request,
        transform=transform,
        num_contents=processed,
        body={"name": name},
    )
    return request
