"""The hyperparameter-optimisation work type (request_type 4): one study = one transform.

Life of a study, and which piece does what:

* ``validate`` cleans the metadata into a ``StudyConfig`` (hpo/study.py); bad spaces are 400s naming the field.
* ``plan`` creates the output collection with the initial points as contents "0", "1", ... and the first
  generation (a processing).
* ``submit`` enqueues the generator (``hpo.handoffs.generation_requested``) on queue ``hpo_generate`` (its own
  time limit); the task stores its outcome in a ``Generation`` row and asks the carrier to poll at once.
* ``poll`` turns a finished generation into new contents (announced New) or a failed processing.
* ``decide`` (the roll-up, after every generation, report, failure, invalidation or expired lease) starts the
  next generation when fewer than ``min_unevaluated_points`` points await a loss and budget remains; finishes
  the study at ``max_points`` or when the generator returned ``[]``, once no point is outstanding; fails it after
  ``max_generator_failures`` failed generations in a row; and ends it when no loss came for ``study_timeout``.
* ``abort`` releases every lease, so no worker keeps a point of a cancelled study.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from django.db.models import Count
from django.utils import timezone

from hpo.handoffs import HPO_QUEUE, generation_requested
from hpo.models import Generation
from hpo.services import point_path
from hpo.study import StudyConfig, study_validate
from hpo.sweeps import leases_release, study_idle_seconds
from requests_app.models import Content, Processing, Transform
from requests_app.models.statuses import (
    PROCESSING_TERMINAL,
    CollectionRelationType,
    CollectionType,
    ContentStatus,
    ContentType,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)
from requests_app.worktypes.base import (
    ContentSpec,
    Decision,
    Plan,
    PollResult,
    ProcessingSpec,
    SubmitResult,
    WorkType,
)

#: Points that still await a loss.
OUTSTANDING = frozenset(
    {ContentStatus.NEW, ContentStatus.PROCESSING, ContentStatus.MAPPED, ContentStatus.FAILED, ContentStatus.LOST}
)
#: Points that count against max_points (invalidated ones do not).
COUNTED_EXCLUDE = frozenset({ContentStatus.DELETED})
#: A generation whose task never reported is given up after its time limit plus this margin.
LOST_GENERATION_MARGIN = 120


class HyperParameterOptWorkType(WorkType):
    """HPO studies: generators propose points, remote workers evaluate them (see the module docstring)."""

    request_type: ClassVar[int] = RequestType.HYPER_PARAMETER_OPT
    name: ClassVar[str] = "hyperparameteropt"
    queue: ClassVar[str] = HPO_QUEUE
    announce_new_contents: ClassVar[bool] = True
    announced_statuses: ClassVar[frozenset[int]] = frozenset({ContentStatus.AVAILABLE})
    # Reports skip the counters (hpo/report_sql.py); every report schedules a roll-up, which recounts.
    recounts_outputs: ClassVar[bool] = True

    def validate(self, *, metadata: dict[str, Any], request_fields: dict[str, Any]) -> dict[str, Any]:
        """Cleaned metadata (workload_id and other unknown keys are kept as given)."""
        config = study_validate(metadata, owner=request_fields.get("owner"))
        return {**metadata, **config.to_metadata()}

    def plan(self, transform: Transform) -> Plan:
        """Output collection with the initial points, and generation 1."""
        request = transform.request
        config = StudyConfig.from_metadata(request.request_metadata)
        scope = request.scope or "hpo"
        name = request.name or f"hpo.{request.pk}"
        contents = [
            ContentSpec(
                name=str(i),
                scope=scope,
                content_type=ContentType.PSEUDO_CONTENT,
                status=ContentStatus.NEW if loss is None else ContentStatus.AVAILABLE,
                path=point_path(point, loss),
                details={"parameters": point, "loss": loss, "provenance": {"generator": "initial", "generation": 0}},
            )
            for i, (point, loss) in enumerate(config.initial_points)
        ]
        return Plan.input_output(
            scope=scope,
            name=name,
            outputs=contents,
            input_type=CollectionType.PSEUDO_DATASET,
            processings=[ProcessingSpec(metadata={"generation": 1})],
        )

    def submit(self, processing: Processing) -> SubmitResult:
        """Enqueue the generator run (idempotent: a second submit finds the Generation row and adds nothing)."""
        number = int(processing.processing_metadata.get("generation", 1))
        _, created = Generation.objects.get_or_create(
            processing=processing, defaults={"transform_id": processing.transform_id, "number": number}
        )
        if created:
            config = StudyConfig.from_metadata(processing.transform.request.request_metadata)
            generation_requested(processing.pk, timeout=config.generator_timeout)
        return SubmitResult(external_id=f"generation-{number}", first_poll_in=5.0, status=ProcessingStatus.RUNNING)

    def poll(self, processing: Processing) -> PollResult:
        """New points from a finished generation, the failure of a failed one, or wait."""
        generation = Generation.objects.filter(processing=processing).first()
        if generation is None or generation.status == Generation.Status.RUNNING:
            config = StudyConfig.from_metadata(processing.transform.request.request_metadata)
            started = processing.submitted_at or processing.created_at
            if (timezone.now() - started).total_seconds() > config.generator_timeout + LOST_GENERATION_MARGIN:
                return PollResult(
                    status=ProcessingStatus.FAILED, error="the generator run was lost (no result within its time limit)"
                )
            return PollResult(next_poll_in=2.0)
        if generation.status == Generation.Status.FAILED:
            return PollResult(
                status=ProcessingStatus.FAILED, error=generation.error, metadata={"generator": generation.details}
            )
        start = Content.objects.filter(
            collection__transform=processing.transform, collection__relation_type=CollectionRelationType.OUTPUT
        ).count()
        scope = processing.request.scope or "hpo"
        provenance = {**generation.details.get("provenance", {}), "generation": generation.number}
        contents = [
            ContentSpec(
                name=str(start + i),
                scope=scope,
                content_type=ContentType.PSEUDO_CONTENT,
                path=point_path(point, None),
                details={"parameters": point, "loss": None, "provenance": provenance},
            )
            for i, point in enumerate(generation.points)
        ]
        return PollResult(
            new_contents=contents,
            status=ProcessingStatus.FINISHED,
            metadata={"points": len(contents), "seconds": generation.seconds},
        )

    def decide(self, transform: Transform) -> Decision:
        """Next generation, wait, or the end of the study (see the module docstring)."""
        processings = list(transform.processings.order_by("id").values_list("status", "processing_metadata", "errors"))
        if any(status not in PROCESSING_TERMINAL for status, _, _ in processings):
            return Decision.wait()
        config = StudyConfig.from_metadata(transform.request.request_metadata)
        # Counted in the database: a study can hold thousands of points and the roll-up runs on every report.
        counts = Counter(
            dict(
                Content.objects.filter(
                    collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT
                )
                .values_list("status")
                .annotate(n=Count("id"))
                .order_by()
            )
        )
        total = sum(n for status, n in counts.items() if status not in COUNTED_EXCLUDE)
        outstanding = sum(counts[s] for s in OUTSTANDING)
        evaluated = counts[ContentStatus.AVAILABLE]
        last_output = self._last_output(transform)
        failures = 0
        for status, _, _ in reversed(processings):
            if status != ProcessingStatus.FAILED:
                break
            failures += 1
        if failures >= config.max_generator_failures:
            last_error = (processings[-1][2] or [{}])[-1].get("error", "unknown error")
            return Decision.done(
                RequestStatus.FAILED,
                output=last_output,
                reason=f"the generator failed {failures} times in a row; last error: {last_error}",
            )
        if study_idle_seconds(transform) >= config.study_timeout:
            status = RequestStatus.SUBFINISHED if evaluated else RequestStatus.FAILED
            return Decision.done(status, output=last_output, reason=f"timed out: no loss for {config.study_timeout} s")
        generator_done = (
            bool(processings)
            and processings[-1][0] == ProcessingStatus.FINISHED
            and processings[-1][1].get("points") == 0
        )
        if generator_done or total >= config.max_points:
            if outstanding:
                return Decision.wait()
            why = (
                "the generator has nothing more to propose"
                if generator_done
                else f"reached max_points={config.max_points}"
            )
            return Decision.done(RequestStatus.FINISHED, output=last_output, reason=why)
        if outstanding < config.min_unevaluated_points or outstanding == 0:
            return Decision(new_processings=[ProcessingSpec(metadata={"generation": len(processings) + 1})])
        return Decision.wait()

    def _last_output(self, transform: Transform) -> list[Any] | None:
        last = Generation.objects.filter(transform=transform, status=Generation.Status.DONE).order_by("-number").first()
        return last.points if last else None

    def abort(self, processing: Processing) -> None:
        """Release every lease of the study: workers get 409 on heartbeat and stop."""
        leases_release(transform=processing.transform)
