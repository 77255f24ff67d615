"""Reads of HPO studies for the API, commands and pages (the app's selectors): find a study, summarise it.

Not named ``selectors.py``: ``hpo/worker_cli.py`` runs as a script from this folder, and a ``selectors``
module here would shadow the standard library's (``socket`` and ``subprocess`` import it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Count

from hpo.models import Generation
from hpo.study import StudyConfig
from requests_app.errors import NotFoundError
from requests_app.models import Collection, Content, Request, Transform
from requests_app.models.statuses import REQUEST_TERMINAL, CollectionRelationType, ContentStatus, RequestType


def study_for_request(request_id: int) -> Transform:
    """The HPO transform of a request, or NotFoundError."""
    transform = studies().filter(request_id=request_id).first()
    if transform is None:
        raise NotFoundError(f"request {request_id} has no hyperparameter-optimisation study")
    return transform


def studies():
    """HPO transforms with their request (one query however they are filtered)."""
    return (
        Transform.objects.select_related("request")
        .filter(transform_type=RequestType.HYPER_PARAMETER_OPT)
        .order_by("id")
    )


def study_summary(*, transform: Transform) -> dict[str, Any]:
    """Best point and loss, counts per status, generations: what a dashboard or a worker needs."""
    collection = Collection.objects.filter(transform=transform, relation_type=CollectionRelationType.OUTPUT).first()
    if collection is None:
        raise NotFoundError(f"the study of request {transform.request_id} is not planned yet; try again shortly")
    counts = Counter(
        dict(Content.objects.filter(collection=collection).values_list("status").annotate(n=Count("id")).order_by())
    )
    best = (
        Content.objects.filter(collection=collection, status=ContentStatus.AVAILABLE)
        .order_by("details__loss", "id")
        .values("name", "details")
        .first()
    )
    generations = list(Generation.objects.filter(transform=transform).values("number", "status", "error", "seconds"))
    request: Request = transform.request
    return {
        "request_id": request.pk,
        "transform_id": transform.pk,
        "workload_id": transform.workload_id,
        "status": request.get_status_display(),
        "finished": transform.status in REQUEST_TERMINAL,
        "best": {"id": best["name"], "parameters": best["details"]["parameters"], "loss": best["details"]["loss"]}
        if best
        else None,
        "counts": {ContentStatus(status).label: n for status, n in sorted(counts.items())},
        "points": sum(n for s, n in counts.items() if s != ContentStatus.DELETED),
        "max_points": StudyConfig.from_metadata(request.request_metadata).max_points,
        "generations": generations,
    }
