"""Reads for the active-learning view: loops, their iterations (parameter sets, results, decisions), the audit.

A loop can run many iterations of up to 1,000 parameter sets each, so nothing here reads a loop's trials
whole: the iteration table is one GROUP BY over the ``al_trial_batch`` index plus the first few parameter
sets of each iteration (a window function), and the full list is read for one iteration at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Min, Q, Window
from django.db.models.functions import RowNumber

from activelearning.models import Loop, Step, Trial
from requests_app.models import Request
from requests_app.models.statuses import RequestType

#: Loops listed on /active-learning/ (the latest first).
LIST_LIMIT = 200
#: Iterations shown on a loop's page (the latest ones): a loop's default cap is 100.
MAX_ITERATIONS = 200
#: Parameter sets shown per iteration in the table and the plots (a batch can be 1,000).
SAMPLE_PER_ITERATION = 5
#: Parameter sets of one iteration listed in full (the decision contract allows at most 1,000 per batch).
MAX_TRIALS = 1000
#: What the iteration table shows of a decision step (not its input document, program or tails).
_STEP_SUMMARY_FIELDS = (
    "id",
    "number",
    "trigger",
    "status",
    "outcome",
    "output",
    "error",
    "stopped",
    "duration_seconds",
    "created_at",
    "started_at",
    "finished_at",
    "forked_from",
)


def loop_list(limit: int = LIST_LIMIT) -> list[tuple[Request, Loop | None]]:
    """The latest active-learning requests with their loop (None while it has not started): two queries."""
    requests = list(Request.objects.filter(request_type=RequestType.ACTIVE_LEARNING).order_by("-id")[:limit])
    loops = {loop.request_id: loop for loop in Loop.objects.filter(request_id__in=[r.pk for r in requests])}
    return [(request, loops.get(request.pk)) for request in requests]


def al_request(request_id: int) -> Request | None:
    return Request.objects.filter(pk=request_id, request_type=RequestType.ACTIVE_LEARNING).first()


def loop_of(request_id: int) -> Loop | None:
    return Loop.objects.filter(request_id=request_id).first()


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def iterations(loop: Loop) -> list[dict[str, Any]]:
    """The latest ``MAX_ITERATIONS`` iterations, oldest first: counts, times, sample parameter sets, decisions.

    Three queries whatever the loop's size: per-iteration aggregates, the first parameter sets of each
    iteration, and the decision steps of those iterations (without their input documents and tails).
    """
    rows = list(
        Trial.objects.filter(loop=loop)
        .order_by()
        .values("iteration")
        .annotate(
            parameter_sets=Count("content_id"),
            reported=Count("content_id", filter=Q(reported=True)),
            late=Count("content_id", filter=Q(late=True)),
            memoised=Count("content_id", filter=Q(memo_of__isnull=False)),
            handed_out_at=Min("content__created_at"),
            last_result_at=Max("reported_at"),
        )
        .order_by("-iteration")[:MAX_ITERATIONS]
    )
    if not rows:
        return []
    first = rows[-1]["iteration"]
    samples: dict[int, list[dict[str, Any]]] = {}
    ranked = (
        Trial.objects.filter(loop=loop, iteration__gte=first)
        .annotate(rank=Window(RowNumber(), partition_by=[F("iteration")], order_by=F("content_id").asc()))
        .filter(rank__lte=SAMPLE_PER_ITERATION)
        .values("iteration", "name", "parameters", "metrics", "reported")
    )
    for trial in ranked:
        samples.setdefault(trial["iteration"], []).append(
            {key: trial[key] for key in ("name", "parameters", "metrics", "reported")}
        )
    steps: dict[int, list[dict[str, Any]]] = {}
    # Plain values, not model instances: building a hundred deferred Step instances cost more than the query.
    for step in Step.objects.filter(loop=loop, number__gte=first).order_by("id").values(*_STEP_SUMMARY_FIELDS):
        steps.setdefault(step["number"], []).append(_labelled(step))
    result = []
    for row in reversed(rows):
        number = row["iteration"]
        decisions = steps.get(number, [])
        decided = decisions[-1] if decisions else None
        result.append(
            {
                **row,
                "task_seconds": _seconds(row["handed_out_at"], row["last_result_at"]),
                "decision_seconds": decided["duration_seconds"] if decided else None,
                "sample": samples.get(number, []),
                "steps": decisions,
            }
        )
    return result


def _labelled(step: dict[str, Any]) -> dict[str, Any]:
    return step | {"status": Step.Status(step["status"]).label}


def step_audit(step: Step) -> dict[str, Any]:
    """A step's full audit record (the iteration detail)."""
    summary = {
        name: getattr(step, "forked_from_id" if name == "forked_from" else name) for name in _STEP_SUMMARY_FIELDS
    }
    return _labelled(summary) | {
        "input_sha256": step.input_sha256,
        "input_bytes": step.input_bytes,
        "program": step.program,
        "program_sha256": step.program_sha256,
        "returncode": step.returncode,
        "runtime": step.runtime,
        "stdout_tail": step.stdout_tail,
        "stderr_tail": step.stderr_tail,
        "merge": step.merge,
    }


def iteration_detail(loop: Loop, iteration: int) -> dict[str, Any]:
    """Every parameter set of one iteration (at most ``MAX_TRIALS``) and its decision steps in full: two queries."""
    trials = (
        Trial.objects.filter(loop=loop, iteration=iteration)
        .select_related("memo_of")
        .order_by("content_id")[:MAX_TRIALS]
    )
    steps = Step.objects.filter(loop=loop, number=iteration).defer("input").order_by("id")
    return {
        "iteration": iteration,
        "trials": [
            {
                "content_id": trial.content_id,
                "name": trial.name,
                "parameters": trial.parameters,
                "reported": trial.reported,
                "results": trial.results,
                "metrics": trial.metrics,
                "reported_at": trial.reported_at,
                "late": trial.late,
                "consumed_by": trial.consumed_by_id,
                "memo_of": trial.memo_of.name if trial.memo_of else None,
            }
            for trial in trials
        ],
        "steps": [step_audit(step) for step in steps],
    }
