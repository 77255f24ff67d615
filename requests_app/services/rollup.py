"""Roll-up: processing -> transform -> collections -> request status, and what comes next.

Lock order everywhere: request row, then transform row (abort and finish take them in the same
order), so two workers never wait on each other in a cycle.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from requests_app.models import Collection, Processing, Request, Transform
from requests_app.models.errorlog import errors_appended
from requests_app.models.statuses import (
    COLLECTION_TERMINAL,
    REQUEST_ACTIVE,
    REQUEST_STOP_END,
    REQUEST_TERMINAL,
    CollectionRelationType,
    CollectionStatus,
    ProcessingStatus,
    RequestStatus,
)
from requests_app.worktypes.registry import get_work_type

from .carrier import processings_create
from .contents import contents_recount
from .messages import collection_message, messages_write
from .transitions import transition

logger = logging.getLogger(__name__)
# Transform end status -> what its output collections become.
COLLECTION_END = {
    RequestStatus.FINISHED: CollectionStatus.CLOSED,
    RequestStatus.SUBFINISHED: CollectionStatus.SUBCLOSED,
    RequestStatus.FAILED: CollectionStatus.FAILED,
    RequestStatus.CANCELLED: CollectionStatus.CANCELLED,
    RequestStatus.EXPIRED: CollectionStatus.CANCELLED,
}


def transform_rollup(*, transform_id: int) -> str:
    """Ask the work type what comes next for a transform and do it."""
    transform = Transform.objects.filter(pk=transform_id).only("request_id", "status").first()
    if transform is None or transform.status in REQUEST_TERMINAL:
        return "nothing to do"
    with transaction.atomic():
        # NO KEY UPDATE: roll-ups, status changes and user actions still take turns, but the inserts
        # that only reference these rows (an HPO checkout's lease, a report's outbox message) do not
        # queue behind a roll-up, whose recount and decision grow with the study (FOR UPDATE blocks
        # the foreign-key check of every such insert until the roll-up commits).
        request = Request.objects.select_for_update(no_key=True).get(pk=transform.request_id)
        transform = Transform.objects.select_for_update(no_key=True).get(pk=transform_id)
        if transform.status in REQUEST_TERMINAL or transform.status == RequestStatus.NEW:
            return "nothing to do"
        if request.status not in REQUEST_ACTIVE:
            return "request not active"
        work_type = get_work_type(transform.transform_type)
        if work_type.recounts_outputs:
            contents_recount(transform=transform, relation=CollectionRelationType.OUTPUT)
        decision = work_type.decide(transform)
        if decision.new_processings:
            processings_create(transform=transform, specs=decision.new_processings)
            return f"started {len(decision.new_processings)} processing(s)"
        if decision.finish is not None:
            transform_finish(
                transform=transform, status=decision.finish, output=decision.output, reason=decision.reason
            )
            return f"finished {RequestStatus(decision.finish).label}"
    return "waiting"


def transform_finish(*, transform: Transform, status: int, output: Any = None, reason: str = "") -> None:
    """End a transform: close its collections, announce the output collection, roll up requests.

    Must run inside a transaction holding the transform's request row lock.
    """
    work_type = get_work_type(transform.transform_type)
    transition(transform, status, reason=reason, actor="rollup", fields={"finished_at": timezone.now()})
    collection_status = COLLECTION_END.get(status, CollectionStatus.CLOSED)
    outputs = []
    for collection in Collection.objects.filter(transform=transform).order_by("id"):
        if collection.status not in COLLECTION_TERMINAL:
            transition(collection, collection_status, reason=reason, actor="rollup")
        if collection.relation_type == CollectionRelationType.OUTPUT:
            outputs.append(collection)
    if outputs:
        # Every end is announced, cancel and expiry included: a consumer waiting for the collection would
        # otherwise wait for ever (docs/messages.md).
        message = collection_message(
            transform=transform,
            work_type_name=work_type.name,
            collections=outputs,
            output=output,
            error=_end_error(status, output, reason),
        )
        messages_write([message])
    requests = [transform.request_id, *transform.joined_requests.values_list("pk", flat=True)]
    for request_id in requests:
        request_rollup(request_id=request_id)


def _end_error(status: int, output: Any, reason: str) -> dict[str, Any] | None:
    """The collection message's ``error``: null when the work finished, else how it ended and what failed."""
    if status == RequestStatus.FINISHED:
        return None
    failed = output.get("failed_files", []) if isinstance(output, dict) else []
    return {"status": RequestStatus(status).label, "reason": reason, "failed_files": failed}


def request_rollup(*, request_id: int) -> None:
    """A request ends when all its transforms (own and joined) ended; its status sums theirs."""
    request = Request.objects.get(pk=request_id)
    if request.status in REQUEST_TERMINAL:
        return
    statuses = list(Transform.objects.filter(request_id=request_id).values_list("status", flat=True))
    statuses += list(request.joined_transforms.values_list("status", flat=True))
    if not statuses or any(s not in REQUEST_TERMINAL for s in statuses):
        return
    if all(s == RequestStatus.FINISHED for s in statuses):
        final = RequestStatus.FINISHED
    elif all(s == RequestStatus.CANCELLED for s in statuses):
        final = RequestStatus.CANCELLED
    elif any(s in (RequestStatus.FINISHED, RequestStatus.SUBFINISHED) for s in statuses):
        final = RequestStatus.SUBFINISHED
    else:
        final = RequestStatus.FAILED
    # A request being aborted or expired ends as such, unless all its work finished first.
    if request.status in REQUEST_STOP_END and final != RequestStatus.FINISHED:
        final = REQUEST_STOP_END[request.status]
    fields = {}
    if final in (RequestStatus.FAILED, RequestStatus.SUBFINISHED):
        # The request shows why, so nobody has to dig through transforms and processings.
        fields["errors"] = {"transforms": _transform_errors(request_id)}
    transition(request, final, reason="all transforms ended", actor="rollup", fields=fields)


def _transform_errors(request_id: int) -> dict[str, str]:
    summary = {}
    for transform in Transform.objects.filter(request_id=request_id).exclude(status=RequestStatus.FINISHED):
        last = (transform.errors or [{}])[-1].get("error") if transform.errors else None
        if last is None:
            failed = transform.processings.exclude(errors=None).order_by("-id").values_list("errors", flat=True).first()
            last = failed[-1]["error"] if failed else RequestStatus(transform.status).label
        summary[str(transform.pk)] = last
    return summary


def transform_fail(*, transform_id: int, reason: str) -> None:
    """Fail a transform for good (planning refused, retries exhausted)."""
    with transaction.atomic():
        transform = Transform.objects.get(pk=transform_id)
        Request.objects.select_for_update().get(pk=transform.request_id)
        transform = Transform.objects.select_for_update().get(pk=transform_id)
        if transform.status in REQUEST_TERMINAL:
            return
        Transform.objects.filter(pk=transform_id).update(errors=errors_appended(transform.errors, reason))
        for processing in Processing.objects.filter(transform=transform, status=ProcessingStatus.NEW):
            transition(processing, ProcessingStatus.CANCEL, reason=reason, actor="rollup")
        transform_finish(transform=transform, status=RequestStatus.FAILED, reason=reason)
