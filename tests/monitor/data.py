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


def hpo_study(*, owner=None, losses: tuple[float, ...] = (0.8, 0.3, 0.5, 0.1, 0.6)) -> Request:
    """An HPO request with a study transform and scored points (as the HPO services leave them)."""
    request = Request.objects.create(
        scope="hpo",
        name=f"study {HOSTILE}",
        requester="alice",
        owner=owner,
        request_type=RequestType.HYPER_PARAMETER_OPT,
        status=RequestStatus.TRANSFORMING,
        request_metadata={"opt_space": {"x": [0.0, 1.0]}, "method": "random", "max_points": 10},
    )
    transform = Transform.objects.create(
        request=request, transform_type=RequestType.HYPER_PARAMETER_OPT, status=RequestStatus.TRANSFORMING
    )
    collection = Collection.objects.create(
        transform=transform,
        request=request,
        relation_type=CollectionRelationType.OUTPUT,
        scope="hpo",
        name=f"points {HOSTILE}",
        total_files=len(losses),
        processed_files=len(losses),
    )
    for number, loss in enumerate(losses):
        Content.objects.create(
            collection=collection,
            scope="hpo",
            name=f"point-{number}",
            status=ContentStatus.AVAILABLE,
            details={
                "parameters": {"x": (number + 1) / 10, "opt": HOSTILE},
                "loss": loss,
                "provenance": {"generator": "random", "generation": 1 + number // 2},
            },
        )
    return request
