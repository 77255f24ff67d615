"""Clerk: a new request becomes its transform(s), or joins a live transform doing the same work."""

from __future__ import annotations

import logging

from django.db import transaction

from requests_app import handoffs
from requests_app.models import Request, Transform
from requests_app.models.statuses import REQUEST_TERMINAL, RequestStatus
from requests_app.worktypes.registry import get_work_type

from .transitions import transition

logger = logging.getLogger(__name__)
# Statuses the clerk takes a request from: new, or held back by throttling last time.
CLERK_STATUSES = (RequestStatus.NEW, RequestStatus.THROTTLING)


def request_process(*, request_id: int) -> list[int]:
    """Create the request's transforms; return their ids (empty when joined or nothing to do)."""
    request = Request.objects.filter(pk=request_id).first()
    if request is None or request.status not in CLERK_STATUSES:
        logger.info("clerk: request %s gone or not new; nothing to do", request_id)
        return []
    work_type = get_work_type(request.request_type)
    wait_reason = work_type.admit(request)
    key = work_type.dedup_key(request)
    specs = work_type.transform_specs(request)
    with transaction.atomic():
        request = Request.objects.select_for_update().get(pk=request_id)
        if request.status not in CLERK_STATUSES:
            return []
        if wait_reason:
            if request.status != RequestStatus.THROTTLING:
                transition(request, RequestStatus.THROTTLING, reason=wait_reason, actor="clerk")
            return []
        if key:
            live = (
                Transform.objects.select_for_update().filter(dedup_key=key).exclude(status__in=REQUEST_TERMINAL).first()
            )
            if live is not None:
                live.joined_requests.add(request)
                transition(request, RequestStatus.TRANSFORMING, reason=f"joined transform {live.pk}", actor="clerk")
                return []
        transforms = [
            Transform.objects.create(
                request=request,
                transform_type=request.request_type,
                transform_tag=request.transform_tag,
                workload_id=request.workload_id,
                priority=request.priority,
                transform_metadata=spec.metadata,
                # Only the first transform carries the key: the join targets it.
                dedup_key=key if index == 0 else None,
            )
            for index, spec in enumerate(specs)
        ]
        transition(request, RequestStatus.TRANSFORMING, reason=f"{len(transforms)} transform(s)", actor="clerk")
        for t in transforms:
            handoffs.transform_created(t.pk)
    return [t.pk for t in transforms]
