"""The HPO safety net, run by beat (``hpo.studies_sweep``): expired point leases, leases of studies that
ended while points were out, and studies that received no loss for too long.
"""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.utils import timezone

from hpo.models import PointLease
from hpo.services import output_collection, points_apply_updates, points_return, study_config
from requests_app import handoffs
from requests_app.models import Content, Transform
from requests_app.models.statuses import REQUEST_TERMINAL, ContentStatus, RequestStatus, RequestType
from requests_app.worktypes.base import ContentUpdate


def leases_expire(*, limit: int = 1000) -> int:
    """Return points whose lease expired to the pool (or fail them); one transaction per study."""
    expired = list(
        PointLease.objects.filter(expires_at__lt=timezone.now())
        .order_by("expires_at")
        .values_list("transform_id", flat=True)[:limit]
    )
    returned = 0
    for transform_id in sorted(set(expired)):
        with transaction.atomic():
            transform = Transform.objects.select_related("request").get(pk=transform_id)
            points = list(
                Content.objects.select_for_update(skip_locked=True)
                .filter(hpo_lease__transform=transform, hpo_lease__expires_at__lt=timezone.now())
                .select_related("hpo_lease")
            )
            if not points:
                continue
            if transform.status in REQUEST_TERMINAL:
                PointLease.objects.filter(content__in=points).delete()
                continue
            workers = Counter(p.hpo_lease.worker for p in points)
            points_return(transform, points, reason=f"lease expired ({', '.join(sorted(workers))})")
            handoffs.transform_changed(transform.pk)
            returned += len(points)
    return returned


def leases_release_ended() -> int:
    """Release the leases of studies that ended (finished, failed, aborted) while points were out."""
    ended = set(
        PointLease.objects.filter(transform__status__in=REQUEST_TERMINAL).values_list("transform_id", flat=True)
    )
    return sum(leases_release(transform=Transform.objects.get(pk=pk)) for pk in ended)


def studies_time_out() -> int:
    """Finish live studies that received no loss for ``study_timeout`` seconds (roll-up decides how)."""
    live = Transform.objects.filter(
        transform_type=RequestType.HYPER_PARAMETER_OPT, status=RequestStatus.TRANSFORMING
    ).select_related("request")
    enqueued = 0
    for transform in live:
        config = study_config(transform)
        if study_idle_seconds(transform) >= config.study_timeout:
            handoffs.transform_changed(transform.pk)
            enqueued += 1
    return enqueued


def study_idle_seconds(transform: Transform) -> float:
    """Seconds since the last loss arrived (or since the study started)."""
    last = (
        Content.objects.filter(collection__transform=transform, status=ContentStatus.AVAILABLE)
        .order_by("-status_changed_at")
        .values_list("status_changed_at", flat=True)
        .first()
    )
    since = last or transform.created_at
    return (timezone.now() - since).total_seconds()


def leases_release(*, transform: Transform) -> int:
    """Abort: drop every lease of the study and put leased points back to New (so nothing stays held)."""
    with transaction.atomic():
        points = list(Content.objects.filter(hpo_lease__transform=transform))
        if points:
            points_apply_updates(
                transform,
                output_collection(transform),
                [ContentUpdate(name=p.name, status=ContentStatus.NEW) for p in points],
            )
        return PointLease.objects.filter(transform=transform).delete()[0]


def studies_sweep() -> dict[str, int]:
    """The periodic HPO safety net: expired leases, leases of ended studies, idle studies."""
    return {
        "leases_expired": leases_expire(),
        "leases_released": leases_release_ended(),
        "studies_timed_out": studies_time_out(),
    }
