"""Reads for the HPO study view: the study's summary (``hpo.study_selectors``) and its points."""

from __future__ import annotations

from typing import Any

from hpo.study_selectors import studies, study_summary
from requests_app.models import Collection, Content, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus

#: A study's page draws at most this many points (studies are hundreds of evaluations).
MAX_POINTS = 2000


def study_list(limit: int = 200) -> list[Transform]:
    return list(studies().order_by("-id")[:limit])


def study_of_request(request_id: int) -> Transform | None:
    return studies().filter(request_id=request_id).first()


def study_summary_or_none(transform: Transform) -> dict[str, Any] | None:
    """The study's summary, or None while it is not planned yet."""
    if not Collection.objects.filter(transform=transform, relation_type=CollectionRelationType.OUTPUT).exists():
        return None
    return study_summary(transform=transform)


def study_points(transform: Transform) -> list[dict[str, Any]]:
    """Every point in creation order: parameters, loss, status, worker and lease, generation, provenance."""
    contents = (
        Content.objects.filter(collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT)
        .select_related("hpo_lease")
        .order_by("id")[:MAX_POINTS]
    )
    points = []
    best_loss = None
    for evaluation, content in enumerate(contents, start=1):
        details = content.details or {}
        provenance = details.get("provenance") or {}
        lease = getattr(content, "hpo_lease", None)
        loss = details.get("loss") if content.status == ContentStatus.AVAILABLE else None
        if isinstance(loss, int | float) and (best_loss is None or loss < best_loss):
            best_loss = loss
        points.append(
            {
                "evaluation": evaluation,
                "id": content.pk,
                "name": content.name,
                "status": ContentStatus(content.status).label,
                "parameters": details.get("parameters") or {},
                "loss": loss,
                "best_so_far": best_loss,
                "worker": lease.worker if lease else "",
                "lease_expires_at": lease.expires_at.isoformat() if lease and lease.expires_at else None,
                "generation": provenance.get("generation"),
                "provenance": provenance,
            }
        )
    return points


def best_point(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [point for point in points if isinstance(point["loss"], int | float)]
    return min(scored, key=lambda point: (point["loss"], point["id"])) if scored else None
