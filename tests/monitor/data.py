"""Data the monitor tests look at: a stage-in-like request with files, and a hostile name."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from activelearning.models import Loop, Step, Trial
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


def al_loop(
    *, owner=None, iterations: int = 3, batch: int = 2, finished: bool = True, name: str = f"loop {HOSTILE}"
) -> Request:
    """An active-learning request with its loop, ``iterations`` batches of ``batch`` parameter sets with results,
    and a decision step per batch (as the active-learning services leave them); the last step stops the loop."""
    now = timezone.now()
    status = RequestStatus.FINISHED if finished else RequestStatus.TRANSFORMING
    request = Request.objects.create(
        scope="al",
        name=name,
        requester="alice",
        owner=owner,
        request_type=RequestType.ACTIVE_LEARNING,
        status=status,
        request_metadata={"callable": "x", "initial_parameters": {"x": 0}},
    )
    transform = Transform.objects.create(request=request, transform_type=RequestType.ACTIVE_LEARNING, status=status)
    collection = Collection.objects.create(
        transform=transform,
        request=request,
        relation_type=CollectionRelationType.OUTPUT,
        scope="al",
        name=f"{name}.sets",
        total_files=iterations * batch,
        processed_files=iterations * batch,
    )
    loop = Loop.objects.create(
        transform=transform,
        request=request,
        status=Loop.Status.FINISHED if finished else Loop.Status.RUNNING,
        iteration=iterations,
        stop_reason=f"the decision returned {{}} {HOSTILE}" if finished else "",
        last_decision={} if finished else {"x": iterations},
        finished_at=now if finished else None,
    )
    for iteration in range(1, iterations + 1):
        al_iteration(loop, collection, iteration, batch=batch, last=finished and iteration == iterations)
    return request


def al_iteration(loop, collection: Collection, iteration: int, *, batch: int = 2, last: bool = False) -> None:
    """Batch ``iteration`` of ``loop``: parameter sets reported with metrics, and the decision on them."""
    now = timezone.now()
    step = Step.objects.create(
        loop=loop,
        number=iteration,
        trigger="all results",
        status=Step.Status.DONE,
        outcome=Step.Outcome.STOP if last else Step.Outcome.NEXT,
        input_sha256="a" * 64,
        input_bytes=321,
        program={"callable": "stepper", "path": HOSTILE},
        program_sha256="b" * 64,
        output={} if last else {"x": iteration},
        returncode=0,
        stderr_tail=f"warning {HOSTILE}",
        runtime="in-process",
        duration_seconds=0.25 * iteration,
        started_at=now,
        finished_at=now,
    )
    for number in range(batch):
        content = Content.objects.create(
            collection=collection,
            scope="al",
            name=str(collection.contents.count()),
            status=ContentStatus.AVAILABLE,
        )
        Trial.objects.create(
            content=content,
            loop=loop,
            name=content.name,
            iteration=iteration,
            parameters={"x": iteration - 1 + number / 10, "label": HOSTILE},
            key=f"{loop.pk}-{content.pk}",
            reported=True,
            results={"note": HOSTILE},
            metrics={"y": float(iteration) + number, HOSTILE: 1.0},
            # The task ran 1.5 s (the iteration's "tasks took").
            reported_at=content.created_at + timedelta(seconds=1.5),
            consumed_by=step,
        )


def as_stagein(request: Request, *, source: str, landed: list[int], every_seconds: float = 20.0) -> Request:
    """Turn a ``campaign_request`` into a stage-in from tape ``source`` whose files landed in batches
    (``landed``, one ``file_stagein`` message each, ``every_seconds`` apart, ending now)."""
    request.request_type = RequestType.STAGE_IN
    request.save(update_fields=["request_type"])
    request.transforms.update(transform_type=RequestType.STAGE_IN, transform_metadata={"source": source})
    transform = request.transforms.get()
    Message.objects.filter(request=request).delete()
    now = timezone.now()
    for number, files in enumerate(landed):
        message = Message.objects.create(
            msg_id=f"m-{request.pk}-{number}",
            msg_type="file_stagein",
            request=request,
            transform=transform,
            num_contents=files,
            body={"name": request.name},
        )
        at = now - timedelta(seconds=every_seconds * (len(landed) - 1 - number))
        Message.objects.filter(pk=message.pk).update(created_at=at)
    done = sum(landed)
    Collection.objects.filter(request=request, relation_type=CollectionRelationType.OUTPUT).update(
        processed_files=done, processed_bytes=done * 1000, bytes=request.collections.get(relation_type=0).bytes
    )
    return request
