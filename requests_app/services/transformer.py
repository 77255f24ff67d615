"""Transformer: a new transform gets its collections, contents and first processing(s)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F

from requests_app.errors import PermanentError, TransientError
from requests_app.models import Collection, Transform
from requests_app.models.errorlog import errors_appended
from requests_app.models.statuses import REQUEST_ACTIVE, RequestStatus
from requests_app.worktypes.registry import get_work_type

from .carrier import processings_create
from .contents import contents_create
from .rollup import transform_fail
from .transitions import transition

logger = logging.getLogger(__name__)


def transform_plan(*, transform_id: int) -> list[int]:
    """Plan a New transform (slow listing happens before the short write transaction)."""
    transform = Transform.objects.select_related("request").filter(pk=transform_id).first()
    if transform is None or transform.status != RequestStatus.NEW:
        return []
    if transform.request.status not in REQUEST_ACTIVE:
        logger.info("transformer: request of transform %s is %s; waiting", transform_id, transform.request.status)
        return []
    work_type = get_work_type(transform.transform_type)
    try:
        plan = work_type.plan(transform)
    except PermanentError as exc:
        transform_fail(transform_id=transform_id, reason=f"planning failed: {exc}")
        return []
    except TransientError as exc:
        # Count it on the row (visible in API and admin); the task's autoretry backs off.
        errors = errors_appended(transform.errors, str(exc))
        Transform.objects.filter(pk=transform_id).update(retries=F("retries") + 1, errors=errors)
        if transform.retries + 1 > settings.IDDS_MAX_RETRIES:
            transform_fail(transform_id=transform_id, reason=f"planning failed {transform.retries + 1} times: {exc}")
            return []
        raise
    with transaction.atomic():
        transform = Transform.objects.select_for_update().get(pk=transform_id)
        if transform.status != RequestStatus.NEW:
            return []
        for spec in plan.collections:
            collection = Collection.objects.create(
                transform=transform,
                request_id=transform.request_id,
                relation_type=spec.relation,
                coll_type=spec.coll_type,
                scope=spec.scope,
                name=spec.name,
                status=spec.status,
                coll_metadata=spec.metadata,
            )
            if spec.contents:
                contents_create(transform=transform, collection=collection, specs=spec.contents, work_type=work_type)
        processings = processings_create(transform=transform, specs=plan.processings)
        transition(
            transform,
            RequestStatus.TRANSFORMING,
            reason=f"planned {len(plan.collections)} collection(s)",
            actor="transformer",
            fields={"transform_metadata": {**transform.transform_metadata, **plan.metadata}},
        )
    return [p.pk for p in processings]
