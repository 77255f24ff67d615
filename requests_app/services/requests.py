"""Request services: submit, and the operator actions abort / suspend / resume / retry / finish.

Actions only record intent and hand off: abort and finish move the request to ToCancel/ToFinish
and a worker does the slow part (cancelling rules) in ``request_control``. Repeating an action
that already took effect is a no-op (HTTP 200); one the status does not allow raises
IllegalTransition (HTTP 409).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from requests_app import handoffs
from requests_app.errors import IllegalTransition, TransientError
from requests_app.models import Collection, Processing, Request, Transform
from requests_app.models.statuses import (
    COLLECTION_TERMINAL,
    PROCESSING_SUBMITTABLE,
    PROCESSING_TERMINAL,
    REQUEST_ACTIVE,
    REQUEST_EXPIRABLE,
    REQUEST_STOP_END,
    REQUEST_TERMINAL,
    CollectionStatus,
    ProcessingStatus,
    RequestStatus,
)
from requests_app.worktypes.base import ProcessingSpec, default_decision
from requests_app.worktypes.registry import get_work_type

from .carrier import processings_create
from .rollup import request_rollup, transform_finish
from .transitions import TABLES, check_transition, transition

logger = logging.getLogger(__name__)
# Statuses whose outside work ``request_control`` stops.
CONTROLLED = frozenset({*REQUEST_STOP_END, RequestStatus.TO_FINISH})
STOP_REASON = {RequestStatus.CANCELLED: "aborted", RequestStatus.EXPIRED: "lifetime expired"}


def request_create(
    *,
    request_type: int,
    metadata: dict[str, Any],
    owner=None,
    scope: str = "",
    name: str = "",
    requester: str = "",
    workload_id: int | None = None,
    priority: int = 0,
    lifetime: int = 30,
    transform_tag: str = "",
) -> Request:
    """Validate with the request's work type, store the request, and wake the clerk."""
    work_type = get_work_type(request_type)
    # The owner too: a work type that runs user programs decides with it where they may run (docs/sandbox.md).
    fields = {"scope": scope, "name": name, "requester": requester, "workload_id": workload_id, "owner": owner}
    cleaned = work_type.validate(metadata=metadata, request_fields=fields)
    if workload_id is None and isinstance(cleaned.get("workload_id"), int):
        workload_id = cleaned["workload_id"]
    with transaction.atomic():
        request = Request.objects.create(
            request_type=request_type,
            scope=scope or cleaned.get("scope", "") or "",
            name=name or cleaned.get("name", "") or "",
            requester=requester or (owner.get_username() if owner is not None else ""),
            owner=owner,
            workload_id=workload_id,
            priority=priority,
            lifetime=lifetime,
            # The lifetime runs from submission; the lifetime sweep expires the request after it.
            expired_at=timezone.now() + timedelta(days=lifetime),
            transform_tag=transform_tag or str(request_type),
            request_metadata=cleaned,
        )
        handoffs.request_accepted(request.pk)
    return request


def _locked(request: Request) -> Request:
    return Request.objects.select_for_update().get(pk=request.pk)


def request_abort(*, request: Request, actor: str = "") -> Request:
    if request.status in (RequestStatus.TO_CANCEL, RequestStatus.CANCELLING, RequestStatus.CANCELLED):
        return request
    with transaction.atomic():
        request = _locked(request)
        if request.status in REQUEST_TERMINAL:
            raise IllegalTransition(
                f"cannot abort request {request.pk}: it is already {request.get_status_display()}",
                extra={"current_status": request.get_status_display()},
            )
        transition(request, RequestStatus.TO_CANCEL, reason="abort requested", actor=actor)
        handoffs.request_stop_requested(request.pk)
    return request


def request_expire(*, request: Request, actor: str = "lifetime") -> Request:
    """End a request past its lifetime: like abort (outside work stopped by ``request_control``),
    but it ends Expired. Terminal or already stopping requests are left as they are."""
    if request.status in (RequestStatus.TO_EXPIRE, RequestStatus.EXPIRING, RequestStatus.EXPIRED):
        return request
    with transaction.atomic():
        request = _locked(request)
        if request.status not in REQUEST_EXPIRABLE:
            return request
        transition(request, RequestStatus.TO_EXPIRE, reason=f"lifetime of {request.lifetime} days over", actor=actor)
        handoffs.request_stop_requested(request.pk)
    return request


def request_finish(*, request: Request, actor: str = "") -> Request:
    """Close a request now: stop outside work, keep what is there (Finished or SubFinished)."""
    if request.status in (RequestStatus.TO_FINISH, RequestStatus.FINISHED):
        return request
    with transaction.atomic():
        request = _locked(request)
        if request.status in REQUEST_TERMINAL:
            raise IllegalTransition(f"cannot finish request {request.pk}: it is already {request.get_status_display()}")
        transition(request, RequestStatus.TO_FINISH, reason="finish requested", actor=actor)
        handoffs.request_stop_requested(request.pk)
    return request


def request_suspend(*, request: Request, actor: str = "") -> Request:
    """Pause: agents leave the request's processings alone until it is resumed."""
    if request.status == RequestStatus.SUSPENDED:
        return request
    with transaction.atomic():
        request = _locked(request)
        transition(request, RequestStatus.SUSPENDED, reason="suspend requested", actor=actor)
    return request


def request_resume(*, request: Request, actor: str = "") -> Request:
    if request.status in REQUEST_ACTIVE and request.status != RequestStatus.NEW:
        return request
    if request.status != RequestStatus.SUSPENDED:
        check_transition(request, RequestStatus.TRANSFORMING)
    with transaction.atomic():
        request = _locked(request)
        has_transforms = request.transforms.exists() or request.joined_transforms.exists()
        transition(
            request, RequestStatus.TRANSFORMING if has_transforms else RequestStatus.NEW, reason="resumed", actor=actor
        )
        _wake_request(request)
    return request


def request_retry(*, request: Request, actor: str = "") -> Request:
    """Give a failed or partly finished request another go: failed processings start again."""
    if request.status not in (RequestStatus.FAILED, RequestStatus.SUBFINISHED):
        raise IllegalTransition(
            f"cannot retry request {request.pk}: only Failed or SubFinished requests can be retried, "
            f"this one is {request.get_status_display()}"
        )
    with transaction.atomic():
        request = _locked(request)
        transition(request, RequestStatus.TRANSFORMING, reason="retry requested", actor=actor)
        for transform in Transform.objects.select_for_update().filter(
            request=request, status__in=[RequestStatus.FAILED, RequestStatus.SUBFINISHED]
        ):
            transition(
                transform,
                RequestStatus.TRANSFORMING,
                reason="retry",
                actor=actor,
                fields={"retries": transform.retries + 1},
            )
            for collection in Collection.objects.filter(transform=transform, status__in=COLLECTION_TERMINAL):
                if CollectionStatus.OPEN in transition_targets(collection):
                    transition(collection, CollectionStatus.OPEN, reason="retry", actor=actor)
            failed = list(
                Processing.objects.filter(
                    transform=transform,
                    status__in=[ProcessingStatus.FAILED, ProcessingStatus.LOST, ProcessingStatus.TIMEOUT],
                )
            )
            for processing in failed:
                transition(processing, ProcessingStatus.NEW, reason="retry", actor=actor, fields={"retries": 0})
            if not failed:
                processings_create(transform=transform, specs=[ProcessingSpec(metadata={"retry": True})])
        _wake_request(request)
    return request


def transition_targets(obj) -> frozenset[int]:
    return TABLES[type(obj)].get(obj.status, frozenset())


def _wake_request(request: Request) -> None:
    """After resume/retry: hand every waiting step of the request to its agent again."""
    if request.status == RequestStatus.NEW:
        handoffs.request_accepted(request.pk)
        return
    Processing.objects.filter(
        request=request, status__in=[ProcessingStatus.SUBMITTED, ProcessingStatus.RUNNING]
    ).update(next_poll_at=timezone.now())
    waiting = (
        Processing.objects.filter(request=request)
        .exclude(status__in=PROCESSING_TERMINAL)
        .values_list("pk", "status", "transform__transform_type")
    )
    for pk, status, transform_type in waiting:
        queue = get_work_type(transform_type).queue
        if status in PROCESSING_SUBMITTABLE:
            handoffs.processing_ready(pk, queue=queue)
        else:
            handoffs.poll_due(pk, queue=queue)
    for pk in Transform.objects.filter(request=request, status=RequestStatus.NEW).values_list("pk", flat=True):
        handoffs.transform_created(pk)


def request_control(*, request_id: int) -> str:
    """The slow half of abort, expiry and finish: stop outside work, then end transforms and request.

    Abort and expiry stop (the request ends Cancelled or Expired, see REQUEST_STOP_END); finish
    keeps what is there.
    """
    request = Request.objects.filter(pk=request_id).first()
    if request is None or request.status not in CONTROLLED:
        return "nothing to do"
    stop_end = REQUEST_STOP_END.get(request.status)
    cancelling = stop_end is not None
    own = list(Transform.objects.filter(request=request).exclude(status__in=REQUEST_TERMINAL))
    for transform in own:
        if cancelling and _has_other_live_requests(transform, request):
            continue
        _stop_outside_work(transform)
    with transaction.atomic():
        request = _locked(request)
        if request.status not in CONTROLLED:
            return "nothing to do"
        # Read again under the lock: an abort may have overtaken a finish since the first read.
        stop_end = REQUEST_STOP_END.get(request.status)
        cancelling = stop_end is not None
        for transform in (
            Transform.objects.select_for_update().filter(request=request).exclude(status__in=REQUEST_TERMINAL)
        ):
            if cancelling and _has_other_live_requests(transform, request):
                _hand_over(transform, request)
                continue
            for processing in Processing.objects.filter(transform=transform).exclude(status__in=PROCESSING_TERMINAL):
                transition(processing, ProcessingStatus.CANCEL, reason="request stopped", actor="control")
            if cancelling:
                end, output = stop_end, None
            else:
                decision = default_decision(transform)
                end = decision.finish if decision.finish is not None else RequestStatus.SUBFINISHED
                output = decision.output
            transform_finish(transform=transform, status=end, output=output, reason="stopped on request")
        # A request that only joined others' transforms leaves them running for the others.
        if cancelling:
            for transform in request.joined_transforms.all():
                transform.joined_requests.remove(request)
            request.refresh_from_db()
            if request.status not in REQUEST_TERMINAL:
                transition(request, stop_end, reason=STOP_REASON[stop_end], actor="control")
        else:
            request_rollup(request_id=request.pk)
    return "done"


def _has_other_live_requests(transform: Transform, request: Request) -> bool:
    return transform.joined_requests.exclude(pk=request.pk).exclude(status__in=REQUEST_TERMINAL).exists()


def _hand_over(transform: Transform, request: Request) -> None:
    """An aborted request gives its shared transform to the next live joined request."""
    heir = transform.joined_requests.exclude(pk=request.pk).exclude(status__in=REQUEST_TERMINAL).order_by("pk").first()
    transform.joined_requests.remove(heir)
    Transform.objects.filter(pk=transform.pk).update(request=heir)
    Processing.objects.filter(transform=transform).update(request=heir)
    Collection.objects.filter(transform=transform).update(request=heir)


def _stop_outside_work(transform: Transform) -> None:
    work_type = get_work_type(transform.transform_type)
    for processing in Processing.objects.filter(transform=transform).exclude(status__in=PROCESSING_TERMINAL):
        try:
            work_type.abort(processing)
        except TransientError:
            raise
        except Exception:  # an abort that cannot be done is logged; the request still stops
            logger.exception("abort of processing %s failed", processing.pk)
