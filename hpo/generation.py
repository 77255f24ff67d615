"""One generator run: read the study's points, call the generator, store the outcome, wake the carrier."""

from __future__ import annotations

import logging
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from hpo.generators.base import GeneratorError
from hpo.handoffs import generation_finished
from hpo.models import Generation
from hpo.study import StudyConfig
from requests_app.models import Content, Processing
from requests_app.models.statuses import CollectionRelationType, ContentStatus

logger = logging.getLogger(__name__)
#: Points generators do not see: invalidated ones.
HIDDEN = (ContentStatus.DELETED,)


def study_history(transform_id: int) -> list[tuple[dict, float | None]]:
    """Every visible point in creation order with its loss (None while awaiting one), in one query."""
    rows = (
        Content.objects.filter(
            collection__transform_id=transform_id, collection__relation_type=CollectionRelationType.OUTPUT
        )
        .exclude(status__in=HIDDEN)
        .order_by("id")
        .values_list("status", "details")
    )
    return [
        (details["parameters"], details.get("loss") if status == ContentStatus.AVAILABLE else None)
        for status, details in rows
    ]


def generation_run(*, processing_id: int) -> str:
    """Run the generation of ``processing_id`` unless it already ran; record points or the failure."""
    generation = (
        Generation.objects.select_related("processing__transform__request").filter(processing_id=processing_id).first()
    )
    if generation is None or generation.status != Generation.Status.RUNNING:
        return "nothing to do"
    processing: Processing = generation.processing
    config = StudyConfig.from_metadata(processing.transform.request.request_metadata)
    history = study_history(processing.transform_id)
    started = time.perf_counter()
    status, points, error, details = Generation.Status.DONE, [], "", {}
    try:
        generator = config.generator()
        details["provenance"] = generator.describe()
        points = generator.generate(history, config.num_points_per_generation, config.max_points)
    except GeneratorError as exc:
        status, error = Generation.Status.FAILED, exc.reason
        details.update(exc.details)
    except SoftTimeLimitExceeded:
        status, error = (
            Generation.Status.FAILED,
            f"the generator exceeded its time limit of {config.generator_timeout} s",
        )
    except Exception as exc:  # noqa: BLE001 — any generator bug fails this generation with its reason
        logger.exception("generator of processing %s crashed", processing_id)
        status, error = Generation.Status.FAILED, f"the generator crashed: {type(exc).__name__}: {exc}"
    with transaction.atomic():
        changed = Generation.objects.filter(pk=generation.pk, status=Generation.Status.RUNNING).update(
            status=status,
            points=points,
            error=error[:4000],
            details=details,
            seconds=time.perf_counter() - started,
            finished_at=timezone.now(),
        )
        if changed:
            generation_finished(processing_id)
    return f"{status}: {len(points)} point(s)"
