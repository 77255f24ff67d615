"""The active-learning work type (request_type 3): one loop = one transform with one long-lived processing.

* ``validate`` cleans the metadata (``activelearning/config.py``); a fork's source must be a loop the owner
  may read, and its iteration must exist.
* ``plan`` creates the output collection with the initial parameter sets as contents "0", "1", ... (announced
  New in ``file_activelearning``); a fork also copies the source's parameter sets and results up to iteration k.
* ``submit`` creates the ``Loop`` (``loop_ensure``); from then on reports and decisions drive it
  (``activelearning/services.py``), not polls.
* ``poll`` only notices the end of the loop (``loop_ended`` polls at once) and, as a safety net, a deadline.
* ``decide`` finishes the request with the last decision as the collection message's ``output``.
* ``abort`` stops the loop: a decision still running applies nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from django.utils import timezone

from activelearning.config import LoopConfig, loop_validate
from activelearning.handoffs import AL_QUEUE, loop_check_due
from activelearning.models import Loop, Trial
from activelearning.services import loop_cancel, loop_ensure, parameters_path
from requests_app.errors import WorkTypeValidationError
from requests_app.models import Processing, Request, Transform
from requests_app.models.statuses import (
    PROCESSING_TERMINAL,
    CollectionType,
    ContentStatus,
    ContentType,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)
from requests_app.worktypes.base import ContentSpec, Decision, Plan, PollResult, ProcessingSpec, SubmitResult, WorkType

#: The loop's processing is polled this often as a safety net; the loop's own hand-offs do the real work.
SAFETY_POLL_SECONDS = 30.0
LOOP_END = {
    Loop.Status.FINISHED: (ProcessingStatus.FINISHED, RequestStatus.FINISHED),
    Loop.Status.FAILED: (ProcessingStatus.FAILED, RequestStatus.FAILED),
    Loop.Status.CANCELLED: (ProcessingStatus.CANCEL, RequestStatus.CANCELLED),
}


def fork_source(fork: dict[str, Any], owner: Any) -> dict[str, Any]:
    """The fork's source loop as ``{"transform_id", ...}``; ``WorkTypeValidationError`` when it cannot be used."""
    where = "request_metadata.fork"
    visible = Request.objects.all() if owner is None else Request.objects.visible_to(owner)
    request = visible.filter(pk=fork["request_id"], request_type=RequestType.ACTIVE_LEARNING).first()
    loop = Loop.objects.filter(request=request).first() if request else None
    if loop is None:
        raise WorkTypeValidationError({f"{where}.request_id": f"no active-learning loop {fork['request_id']} of yours"})
    if owner is not None and not owner.is_staff and request.owner_id != owner.pk:
        raise WorkTypeValidationError({f"{where}.request_id": "only the owner of a loop (or staff) may fork it"})
    if (
        fork["iteration"] > loop.iteration
        or not Trial.objects.filter(loop=loop, iteration=fork["iteration"], reported=True).exists()
    ):
        problem = f"loop {fork['request_id']} has no reported results for iteration {fork['iteration']}"
        raise WorkTypeValidationError({f"{where}.iteration": problem})
    return {**fork, "transform_id": loop.pk}


class ActiveLearningWorkType(WorkType):
    """Active learning: a decision program turns each task's results into the next task's parameters."""

    request_type: ClassVar[int] = RequestType.ACTIVE_LEARNING
    name: ClassVar[str] = "activelearning"
    queue: ClassVar[str] = AL_QUEUE
    announce_new_contents: ClassVar[bool] = True
    # Reports are read over REST; only new parameter sets are announced.
    announced_statuses: ClassVar[frozenset[int]] = frozenset()

    def validate(self, *, metadata: dict[str, Any], request_fields: dict[str, Any]) -> dict[str, Any]:
        owner = request_fields.get("owner")
        config = loop_validate(metadata, owner=owner)
        if config.fork:
            config.fork = fork_source(config.fork, owner)
        return {**metadata, **config.to_metadata()}

    def plan(self, transform: Transform) -> Plan:
        """The output collection: a fork's history up to iteration k, then the initial parameter sets."""
        request = transform.request
        config = LoopConfig.from_metadata(request.request_metadata)
        scope = request.scope or "activelearning"
        contents = self._forked_contents(config, scope) if config.fork else []
        iteration = config.fork["iteration"] + 1 if config.fork else 1
        contents += [
            ContentSpec(
                name=str(len(contents) + i),
                scope=scope,
                content_type=ContentType.PSEUDO_CONTENT,
                path=parameters_path(parameters),
                details={"parameters": parameters, "iteration": iteration},
            )
            for i, parameters in enumerate(config.initial_parameters)
        ]
        return Plan.input_output(
            scope=scope,
            name=request.name or f"activelearning.{request.pk}",
            outputs=contents,
            input_type=CollectionType.PSEUDO_DATASET,
            processings=[ProcessingSpec(metadata={"loop": True})],
        )

    def _forked_contents(self, config: LoopConfig, scope: str) -> list[ContentSpec]:
        trials = Trial.objects.filter(
            loop_id=config.fork["transform_id"], iteration__lte=config.fork["iteration"], reported=True
        ).order_by("iteration", "content_id")
        return [
            ContentSpec(
                name=str(i),
                scope=scope,
                content_type=ContentType.PSEUDO_CONTENT,
                status=ContentStatus.AVAILABLE,
                path=parameters_path(trial.parameters),
                details={
                    "parameters": trial.parameters,
                    "iteration": trial.iteration,
                    "reported": True,
                    "results": trial.results,
                    "metrics": trial.metrics,
                    "forked_from": {"request_id": config.fork["request_id"], "name": trial.name},
                },
            )
            for i, trial in enumerate(trials)
        ]

    def submit(self, processing: Processing) -> SubmitResult:
        """Start the loop (idempotent: a second submit finds it)."""
        loop_ensure(transform=processing.transform)
        return SubmitResult(
            external_id=f"loop-{processing.transform_id}",
            first_poll_in=SAFETY_POLL_SECONDS,
            status=ProcessingStatus.RUNNING,
        )

    def poll(self, processing: Processing) -> PollResult:
        """The loop's end, or a look at its clock (deadline, quorum grace) as a safety net."""
        loop = Loop.objects.filter(transform_id=processing.transform_id).first()
        if loop is None:
            return PollResult(next_poll_in=SAFETY_POLL_SECONDS)
        if loop.is_terminal:
            status = LOOP_END[loop.status][0]
            error = loop.stop_reason if status == ProcessingStatus.FAILED else None
            return PollResult(status=status, error=error, metadata={"stop_reason": loop.stop_reason})
        config = LoopConfig.from_metadata(processing.transform.request.request_metadata)
        late = config.deadline_seconds is not None and (
            (timezone.now() - loop.started_at).total_seconds() >= config.deadline_seconds
        )
        check = [partial(loop_check_due, processing.transform_id, countdown=0)] if late or loop.quorum_at else []
        return PollResult(next_poll_in=SAFETY_POLL_SECONDS, after_commit=check)

    def decide(self, transform: Transform) -> Decision:
        """Finish once the loop ended and its processing did; the last decision is the output."""
        statuses = list(transform.processings.values_list("status", flat=True))
        if any(status not in PROCESSING_TERMINAL for status in statuses):
            return Decision.wait()
        loop = Loop.objects.filter(transform=transform).first()
        if loop is None or not loop.is_terminal:
            return Decision.done(RequestStatus.FAILED, reason="the loop's processing ended before the loop")
        return Decision.done(LOOP_END[loop.status][1], output=loop.last_decision, reason=loop.stop_reason)

    def abort(self, processing: Processing) -> None:
        loop_cancel(transform=processing.transform)
