"""The life of an active-learning loop: results reported, quorum, decision steps queued and applied, the end.

Every write that can start a decision takes the ``Loop`` row lock first, so two reports of one batch arriving
together start exactly one decision. Parameter sets become contents through the core's content services, in
the same transaction: their ``file_activelearning`` messages (New) are written with them. The end of the loop
polls its processing at once; the roll-up then finishes the request with the collection message, whose
``output`` is the last decision (``ActiveLearningWorkType.decide``).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from activelearning import handoffs
from activelearning.config import LoopConfig
from activelearning.models import Loop, Step, Trial
from activelearning.program import ProgramRun
from activelearning.stop_rules import (
    deadline_reason,
    max_iterations_reason,
    metrics_of,
    plateau_reason,
    target_reason,
)
from requests_app.errors import ApplicationError, ConflictError, NotFoundError
from requests_app.models import Collection, Content, Processing, Request, Transform
from requests_app.models.statuses import (
    PROCESSING_TERMINAL,
    REQUEST_ACTIVE,
    CollectionRelationType,
    ContentStatus,
    ContentType,
    RequestType,
)
from requests_app.services.contents import contents_apply_updates, contents_create
from requests_app.worktypes.base import ContentSpec, ContentUpdate
from requests_app.worktypes.registry import get_work_type

#: Largest decision output accepted as a batch.
MAX_BATCH = 1000


def parameters_key(parameters: Any) -> str:
    """sha256 of the canonical JSON of a parameter set: equal parameters, equal keys (memoisation)."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parameters_path(parameters: dict[str, Any]) -> str:
    """The ``path`` of a parameter set's file message: its parameters as JSON."""
    return json.dumps(parameters, sort_keys=True)


def loop_config(transform: Transform) -> LoopConfig:
    return LoopConfig.from_metadata(transform.request.request_metadata)


def output_collection(transform: Transform) -> Collection:
    collection = Collection.objects.filter(transform=transform, relation_type=CollectionRelationType.OUTPUT).first()
    if collection is None:
        raise NotFoundError(f"the loop of request {transform.request_id} is not planned yet; try again shortly")
    return collection


def _locked_loop(transform: Transform) -> Loop:
    """The loop row, locked; created (with trials for the planned contents) on first use."""
    loop = Loop.objects.select_for_update().filter(transform=transform).first()
    if loop is None:
        loop_ensure(transform=transform)
        loop = Loop.objects.select_for_update().get(transform=transform)
    return loop


@transaction.atomic
def loop_ensure(*, transform: Transform) -> Loop:
    """Create the loop of a planned transform (idempotent): its trials from the planned contents, the audit
    trail copied from a fork's source; a fork without new parameters decides at once on iteration k."""
    collection = output_collection(transform)
    loop, created = Loop.objects.get_or_create(transform=transform, defaults={"request_id": transform.request_id})
    if not created:
        return loop
    loop = Loop.objects.select_for_update().get(pk=loop.pk)
    contents = list(Content.objects.filter(collection=collection).order_by("id"))
    trials = [_trial_from_content(loop, content) for content in contents]
    Trial.objects.bulk_create(trials)
    config = loop_config(transform)
    loop.iteration = max((t.iteration for t in trials), default=1)
    if config.fork:
        steps = _fork_steps_copy(loop, config.fork)
        # Results up to iteration k-1 were consumed by the copied decisions; those of k await the new decision,
        # unless the fork brings its own parameters for iteration k+1.
        last_consumed = config.fork["iteration"] - (0 if config.initial_parameters else 1)
        Trial.objects.filter(loop=loop, iteration__lte=last_consumed).update(consumed_by=steps[-1] if steps else None)
    loop.save()
    if config.deadline_seconds is not None:
        handoffs.loop_check_due(transform.pk, countdown=config.deadline_seconds)
    _advance(loop, config)
    return loop


def _trial_from_content(loop: Loop, content: Content) -> Trial:
    details = content.details
    reported = bool(details.get("reported"))
    return Trial(
        content=content,
        loop=loop,
        name=content.name,
        iteration=int(details.get("iteration", 1)),
        parameters=details.get("parameters", {}),
        key=parameters_key(details.get("parameters", {})),
        reported=reported,
        results=details.get("results"),
        metrics=details.get("metrics", {}),
        reported_at=timezone.now() if reported else None,
    )


def _fork_steps_copy(loop: Loop, fork: dict[str, int]) -> list[Step]:
    """Copy the source loop's decisions before iteration k (the audit trail of the fork's history)."""
    copied = []
    for step in Step.objects.filter(
        loop_id=fork["transform_id"], number__lt=fork["iteration"], status=Step.Status.DONE
    ).order_by("id"):
        original_pk = step.pk
        step.pk = None
        step.loop = loop
        step.forked_from_id = original_pk
        step.save()
        copied.append(step)
    return copied


def _open_step(loop: Loop) -> Step | None:
    return Step.objects.filter(loop=loop, status__in=Step.OPEN).first()


def _iteration_bests(loop: Loop, metric: str, mode: str) -> list[float]:
    """The best value of ``metric`` per iteration, oldest first, from every reported trial."""
    per_iteration: dict[int, list[float]] = {}
    for iteration, metrics in Trial.objects.filter(loop=loop, reported=True).values_list("iteration", "metrics"):
        if metric in (metrics or {}):
            per_iteration.setdefault(iteration, []).append(metrics[metric])
    pick = min if mode == "min" else max
    return [pick(values) for _, values in sorted(per_iteration.items())]


def _stop_reason(loop: Loop, config: LoopConfig, batch_metrics: list[dict[str, float]]) -> str | None:
    """The first stop rule that holds once the current batch's results are in."""
    plateau = config.plateau
    bests = _iteration_bests(loop, plateau["metric"], plateau["mode"]) if plateau else []
    return (
        target_reason(config, batch_metrics)
        or plateau_reason(config, bests)
        or max_iterations_reason(config, loop.iteration)
        or deadline_reason(config, loop.started_at, timezone.now())
    )


def _quorum_trigger(loop: Loop, config: LoopConfig, batch: list[Trial]) -> str | None:
    """ "all" when the whole batch reported, "quorum" once the fraction reported and the grace time passed."""
    reported = sum(1 for t in batch if t.reported)
    if batch and reported == len(batch):
        return "all"
    if not reported or reported < math.ceil(config.quorum_fraction * len(batch)):
        return None
    now = timezone.now()
    if loop.quorum_at is None:
        loop.quorum_at = now
        loop.save(update_fields=["quorum_at"])
        handoffs.loop_check_due(loop.transform_id, countdown=config.quorum_grace_seconds)
    if now >= loop.quorum_at + timedelta(seconds=config.quorum_grace_seconds):
        return "quorum"
    return None


def _advance(loop: Loop, config: LoopConfig, *, trigger: str | None = None) -> Step | None:
    """Under the loop lock: stop, queue the next decision, or wait for more results."""
    if loop.is_terminal or _open_step(loop) is not None:
        return None
    # The current batch and every unconsumed report (late ones of earlier batches included) in one read.
    trials = list(
        Trial.objects.filter(Q(iteration=loop.iteration) | Q(reported=True, consumed_by=None), loop=loop).order_by(
            "iteration", "content_id"
        )
    )
    batch = [t for t in trials if t.iteration == loop.iteration]
    trigger = trigger or _quorum_trigger(loop, config, batch)
    if trigger is None:
        return None
    pending = [t for t in trials if t.reported and t.consumed_by_id is None]
    reason = _stop_reason(loop, config, [t.metrics for t in pending if t.iteration == loop.iteration])
    if reason:
        loop_end(loop=loop, status=Loop.Status.FINISHED, reason=reason)
        return None
    return _step_queue(loop, config, pending, trigger=trigger, document=_step_document(loop, pending, batch))


def _step_document(loop: Loop, pending: list[Trial], batch: list[Trial]) -> dict[str, Any]:
    """What the decision reads from %IN: this batch's results, late ones, and the loop's history."""
    limit = settings.IDDS_AL_HISTORY_LIMIT
    history = list(
        Trial.objects.filter(loop=loop, reported=True)
        .order_by("-iteration", "-content_id")
        .values("name", "iteration", "parameters", "metrics")[:limit]
    )
    return {
        "request_id": loop.request_id,
        "iteration": loop.iteration,
        "parameters": [t.parameters for t in batch],
        "results": [_trial_entry(t) for t in pending if not t.late],
        "late": [_trial_entry(t) for t in pending if t.late],
        "history": history[::-1],
    }


def _trial_entry(trial: Trial) -> dict[str, Any]:
    return {
        "name": trial.name,
        "iteration": trial.iteration,
        "parameters": trial.parameters,
        "results": trial.results,
        "metrics": trial.metrics,
    }


def _step_queue(loop: Loop, config: LoopConfig, pending: list[Trial], *, trigger: str, document: dict) -> Step:
    text = json.dumps(document, sort_keys=True)
    step = Step.objects.create(
        loop=loop,
        number=loop.iteration,
        trigger=trigger,
        input=document,
        input_sha256=hashlib.sha256(text.encode()).hexdigest(),
        input_bytes=len(text),
    )
    Trial.objects.filter(pk__in=[t.pk for t in pending]).update(consumed_by=step)
    if loop.quorum_at is not None:
        loop.quorum_at = None
        loop.save(update_fields=["quorum_at"])
    handoffs.step_queued(step.pk, timeout=config.timeout)
    return step


def loop_end(*, loop: Loop, status: str, reason: str) -> None:
    """End the loop (under its lock) and poll its processing at once, so the request finishes."""
    loop.status = status
    loop.stop_reason = reason[:4000]
    loop.finished_at = timezone.now()
    loop.save(update_fields=["status", "stop_reason", "finished_at"])
    processing = (
        Processing.objects.filter(transform_id=loop.transform_id).exclude(status__in=PROCESSING_TERMINAL).first()
    )
    if processing is not None:
        handoffs.loop_ended(processing.pk)


def _check_live(loop: Loop) -> None:
    if loop.is_terminal:
        raise ConflictError(f"the loop of request {loop.request_id} has ended ({loop.status}: {loop.stop_reason})")


@transaction.atomic
def trial_report(
    *, transform: Transform, name: str, results: Any, metrics: dict[str, Any] | None = None, trigger: str | None = None
) -> tuple[Trial, Step | None]:
    """Record the results of the task that ran parameter set ``name``; decide at once if the batch is complete
    (or at once in any case with ``trigger``, a step call). A repeated identical report is a no-op."""
    loop = _locked_loop(transform)
    trial = Trial.objects.filter(loop=loop, name=name).first()
    if trial is None:
        raise NotFoundError(f"request {transform.request_id} has no parameter set {name!r}")
    if trial.reported:
        if trial.results == results and trial.memo_of_id is None:
            return trial, None
        raise ConflictError(f"parameter set {name!r} already has results")
    _check_live(loop)
    config = loop_config(transform)
    trial.reported, trial.results, trial.reported_at = True, results, timezone.now()
    trial.metrics = metrics_of(results, metrics)
    trial.late = trial.iteration < loop.iteration or Step.objects.filter(loop=loop, number=trial.iteration).exists()
    trial.save(update_fields=["reported", "results", "metrics", "reported_at", "late"])
    contents_apply_updates(
        transform=transform,
        collections={CollectionRelationType.OUTPUT: output_collection(transform)},
        updates=[ContentUpdate(name=name, status=ContentStatus.AVAILABLE, details={"metrics": trial.metrics})],
        work_type=get_work_type(RequestType.ACTIVE_LEARNING),
    )
    if trigger is not None and _open_step(loop) is not None:
        raise ConflictError(f"a decision of request {transform.request_id} is running; fetch its step first")
    return trial, _advance(loop, config, trigger=trigger)


@transaction.atomic
def step_call(
    *, transform: Transform, parameters: dict[str, Any] | None, results: Any, metrics: dict[str, Any] | None
) -> Step:
    """Mode (b): the results of a task the caller ran with ``parameters`` (a new parameter set of the current
    iteration, or one the loop handed out); the decision is queued at once whatever the quorum."""
    loop = _locked_loop(transform)
    _check_live(loop)
    if _open_step(loop) is not None:
        raise ConflictError(f"a decision of request {transform.request_id} is running; fetch its step first")
    parameters = parameters or {}
    key = parameters_key(parameters)
    trial = Trial.objects.filter(loop=loop, key=key, reported=False).order_by("-iteration").first()
    if trial is None:
        trial = _trials_create(loop, loop_config(transform), [parameters], memoise=False)[0]
    _, step = trial_report(transform=transform, name=trial.name, results=results, metrics=metrics, trigger="call")
    if step is None:
        raise ConflictError(
            f"the loop of request {transform.request_id} ended: {Loop.objects.get(pk=loop.pk).stop_reason}"
        )
    return step


def _trials_create(loop: Loop, config: LoopConfig, sets: list[dict[str, Any]], *, memoise: bool) -> list[Trial]:
    """New parameter sets of iteration ``loop.iteration``: contents announced New (or Available when memoised
    from an earlier identical set) and their trials."""
    transform = loop.transform
    collection = output_collection(transform)
    start = Content.objects.filter(collection=collection).count()
    scope = collection.scope
    specs, sources = [], []
    for index, parameters in enumerate(sets):
        source = (
            Trial.objects.filter(loop=loop, key=parameters_key(parameters), reported=True).order_by("iteration").first()
            if memoise
            else None
        )
        sources.append(source)
        details = {"parameters": parameters, "iteration": loop.iteration}
        if source is not None:
            details.update(reported=True, memo_of=source.name, metrics=source.metrics)
        specs.append(
            ContentSpec(
                name=str(start + index),
                scope=scope,
                content_type=ContentType.PSEUDO_CONTENT,
                status=ContentStatus.AVAILABLE if source else ContentStatus.NEW,
                path=parameters_path(parameters),
                details=details,
            )
        )
    contents_create(
        transform=transform,
        collection=collection,
        specs=specs,
        work_type=get_work_type(RequestType.ACTIVE_LEARNING),
    )
    contents = {
        content.name: content
        for content in Content.objects.filter(collection=collection, name__in=[spec.name for spec in specs])
    }
    trials = []
    for spec, source in zip(specs, sources, strict=True):
        trial = _trial_from_content(loop, contents[spec.name])
        if source is not None:
            trial.results, trial.memo_of = source.results, source
        trials.append(trial)
    return Trial.objects.bulk_create(trials)


def decision_classify(output: Any) -> tuple[str, list[dict[str, Any]]]:
    """The decision's JSON: an object = the next parameters, a list of objects = a batch, {} or [] = stop.

    ``ApplicationError`` names what is wrong with anything else."""
    if output in ({}, []):
        return Step.Outcome.STOP, []
    if isinstance(output, dict):
        return Step.Outcome.NEXT, [output]
    if isinstance(output, list):
        if len(output) > MAX_BATCH:
            raise ApplicationError(f"the decision proposed {len(output)} parameter sets; at most {MAX_BATCH}")
        if all(isinstance(item, dict) and item for item in output):
            return Step.Outcome.BATCH, output
        raise ApplicationError("the decision output is a list, but not of non-empty JSON objects")
    raise ApplicationError(
        f"the decision output must be a JSON object, a list of objects, {{}} or [], got {type(output).__name__}"
    )


def _record(step: Step, run: ProgramRun, merge: dict[str, Any] | None) -> None:
    step.output, step.output_text, step.error = run.output, run.output_text, run.error[:4000]
    step.returncode, step.stopped, step.runtime = run.returncode, run.stopped, run.runtime
    step.stdout_tail, step.stderr_tail = run.stdout_tail, run.stderr_tail
    step.program, step.program_sha256 = run.program, run.program_sha256
    step.duration_seconds, step.merge, step.finished_at = run.duration_seconds, merge, timezone.now()


STEP_RECORD_FIELDS = [
    "status",
    "outcome",
    "output",
    "output_text",
    "error",
    "returncode",
    "stopped",
    "runtime",
    "stdout_tail",
    "stderr_tail",
    "program",
    "program_sha256",
    "duration_seconds",
    "merge",
    "finished_at",
]


@transaction.atomic
def step_apply(*, step_id: int, run: ProgramRun, merge: dict[str, Any] | None = None) -> Step:
    """Record a finished decision run and act on it: the next batch, the end of the loop, or a failed step."""
    first = Step.objects.select_related("loop__transform__request").get(pk=step_id)
    loop = Loop.objects.select_for_update().get(pk=first.loop_id)
    step = Step.objects.select_for_update().get(pk=step_id)
    if step.status != Step.Status.RUNNING:
        return step
    _record(step, run, merge)
    # Transform and request came with the first read; the locked rows would fetch them again, one query each.
    loop.transform, step.loop = first.loop.transform, loop
    config = loop_config(loop.transform)
    # An abort or finish recorded while the program ran wins, even before the control step stopped the loop.
    request_status = Request.objects.filter(pk=loop.request_id).values_list("status", flat=True).first()
    if loop.is_terminal or request_status not in REQUEST_ACTIVE:
        ended = loop.status if loop.is_terminal else "request stopping"
        step.status, step.error = Step.Status.SKIPPED, step.error or f"the loop had ended ({ended})"
        step.save(update_fields=STEP_RECORD_FIELDS)
        return step
    try:
        if not run.ok:
            raise ApplicationError(run.error or "the decision failed")
        outcome, sets = decision_classify(run.output)
    except ApplicationError as exc:
        step.status, step.outcome, step.error = Step.Status.FAILED, Step.Outcome.ERROR, exc.message[:4000]
        step.save(update_fields=STEP_RECORD_FIELDS)
        _step_failed(loop, config, step)
        return step
    step.status, step.outcome = Step.Status.DONE, outcome
    step.save(update_fields=STEP_RECORD_FIELDS)
    loop.failed_steps, loop.last_decision = 0, run.output
    merged_metrics = _merged_metrics(merge)
    if outcome == Step.Outcome.STOP:
        loop.save(update_fields=["failed_steps", "last_decision"])
        loop_end(loop=loop, status=Loop.Status.FINISHED, reason=f"the decision returned {json.dumps(run.output)}")
    elif merged_metrics and (reason := target_reason(config, [merged_metrics])):
        loop.save(update_fields=["failed_steps", "last_decision"])
        loop_end(loop=loop, status=Loop.Status.FINISHED, reason=reason)
    else:
        loop.iteration += 1
        loop.save(update_fields=["failed_steps", "last_decision", "iteration"])
        trials = _trials_create(loop, config, sets, memoise=config.memoise)
        # A fresh batch with nothing reported waits for its tasks (two queries saved per step); only memoised
        # sets arrive with their results and may complete it at once.
        if any(trial.reported for trial in trials):
            _advance(loop, config)
    return step


def _merged_metrics(merge: dict[str, Any] | None) -> dict[str, float]:
    """The metrics a merge step computed: its output's ``metrics`` object, else its output's numbers."""
    output = (merge or {}).get("output")
    if isinstance(output, dict) and isinstance(output.get("metrics"), dict):
        return metrics_of(output["metrics"], None)
    return metrics_of(output, None)


def _step_failed(loop: Loop, config: LoopConfig, step: Step) -> None:
    """Count a failed step; fail the loop after ``max_failed_steps`` in a row, else run the decision again."""
    loop.failed_steps += 1
    loop.save(update_fields=["failed_steps"])
    if loop.failed_steps >= config.max_failed_steps:
        loop_end(
            loop=loop,
            status=Loop.Status.FAILED,
            reason=f"the decision failed {loop.failed_steps} time(s) in a row; last error: {step.error}",
        )
        return
    retry = _step_queue(loop, config, [], trigger="retry", document=step.input)
    Trial.objects.filter(consumed_by=step).update(consumed_by=retry)


def step_start(*, step_id: int) -> Step | None:
    """Claim a queued step (compare-and-swap); None when another worker has it, it is done, or its loop ended
    meanwhile (then it is skipped without running the program)."""
    now = timezone.now()
    live = Step.objects.filter(
        pk=step_id,
        status=Step.Status.QUEUED,
        loop__status=Loop.Status.RUNNING,
        loop__request__status__in=REQUEST_ACTIVE,
    )
    if live.update(status=Step.Status.RUNNING, started_at=now) != 1:
        Step.objects.filter(pk=step_id, status=Step.Status.QUEUED).update(
            status=Step.Status.SKIPPED, error="the loop had ended before the step ran", finished_at=now
        )
        return None
    # The owner too: the program's sandbox depends on it (one query, not one more per program run).
    return Step.objects.select_related("loop__transform__request__owner").get(pk=step_id)


@transaction.atomic
def loop_check(*, transform_id: int) -> str:
    """The clock: a quorum whose grace time passed, or a deadline reached (countdown tasks and polls)."""
    transform = Transform.objects.select_related("request").filter(pk=transform_id).first()
    loop = Loop.objects.select_for_update().filter(pk=transform_id).first()
    if transform is None or loop is None or loop.is_terminal:
        return "nothing to do"
    config = loop_config(transform)
    if reason := deadline_reason(config, loop.started_at, timezone.now()):
        loop_end(loop=loop, status=Loop.Status.FINISHED, reason=reason)
        return reason
    if config.deadline_seconds is not None:
        remaining = config.deadline_seconds - (timezone.now() - loop.started_at).total_seconds()
        handoffs.loop_check_due(transform_id, countdown=remaining)
    step = _advance(loop, config)
    return f"step {step.number} queued" if step else "waiting"


@transaction.atomic
def loop_cancel(*, transform: Transform) -> None:
    """Abort: the loop stops; a decision still running records its output but applies nothing."""
    loop = Loop.objects.select_for_update().filter(transform=transform).first()
    if loop is not None and not loop.is_terminal:
        loop.status, loop.stop_reason, loop.finished_at = Loop.Status.CANCELLED, "aborted", timezone.now()
        loop.save(update_fields=["status", "stop_reason", "finished_at"])
