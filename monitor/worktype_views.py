"""Work-type pages: the data carousel dashboard, HPO studies, active-learning loops."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from . import al_selectors, carousel_selectors, hpo_selectors
from .rendering import is_live, not_found, readable, respond
from .svg import Series, plot
from .templatetags.monitor_tags import compact_json, seconds

#: Axis tick format per curve bucket: seconds for a campaign minutes old, dates for weeks.
_TICK_FORMATS = {"second": "%H:%M:%S", "minute": "%H:%M", "hour": "%m-%d %H:%M", "day": "%Y-%m-%d"}


def _time_labels(bucket: str) -> Callable[[float], str]:
    tick = _TICK_FORMATS.get(bucket, "%m-%d %H:%M")
    return lambda epoch: datetime.fromtimestamp(epoch).strftime(tick)  # noqa: DTZ006 — server-local axis ticks


def _time_series(name: str, points: list[tuple[str, int]]) -> Series:
    return Series(
        name=name,
        points=[(datetime.fromisoformat(at).timestamp(), n, f"{name}: {n} files by {at}") for at, n in points],
    )


@require_GET
@readable
def carousel(request: HttpRequest) -> HttpResponse:
    sources = carousel_selectors.sources()
    staged = carousel_selectors.staged_over_time()
    stuck = carousel_selectors.stuck_rules()
    throttled = carousel_selectors.throttled()
    campaign_plot = plot(
        [_time_series("campaign", staged["campaign"])],
        title="Files staged over time (campaign)",
        y_label="files",
        x_format=_time_labels(staged["bucket"]),
    )
    request_plot = plot(
        [_time_series(f"request {request_id}", points) for request_id, points in staged["requests"].items()],
        title="Files staged over time per request",
        y_label="files",
        x_format=_time_labels(staged["bucket"]),
    )
    live = any(row["files_queued"] or row["files_active"] for row in sources)
    data = {"sources": sources, "staged_over_time": staged, "stuck": stuck, "throttled": throttled, "live": live}
    return respond(
        request,
        "monitor/carousel.html",
        {**data, "campaign_plot": campaign_plot, "request_plot": request_plot},
        lambda: data,
    )


@require_GET
@readable
def hpo_studies(request: HttpRequest) -> HttpResponse:
    rows = [
        {
            "request_id": study.request_id,
            "transform_id": study.pk,
            "name": study.request.name,
            "status": study.get_status_display(),
            "request_status": study.request.get_status_display(),
            "requester": study.request.requester,
            "updated": study.updated_at,
        }
        for study in hpo_selectors.study_list()
    ]
    return respond(request, "monitor/hpo_list.html", {"rows": rows}, lambda: {"studies": rows})


@require_GET
@readable
def hpo_study(request: HttpRequest, request_id: int) -> HttpResponse:
    study = hpo_selectors.study_of_request(request_id)
    if study is None:
        return not_found(request, f"HPO study of request {request_id}")
    summary = hpo_selectors.study_summary_or_none(study)
    points = hpo_selectors.study_points(study)
    best = hpo_selectors.best_point(points)
    scored = [point for point in points if point["loss"] is not None]
    best_index = {scored.index(best)} if best else set()
    loss_plot = plot(
        [
            Series(
                "loss", [(p["evaluation"], p["loss"], f"{p['name']}: loss {p['loss']:.6g}") for p in scored], best_index
            ),
            Series(
                "best so far",
                [(p["evaluation"], p["best_so_far"], f"best so far {p['best_so_far']:.6g}") for p in scored],
            ),
        ],
        title="Loss per evaluation",
        x_label="evaluation",
        y_label="loss",
        lines=True,
    )
    parameter_plots = []
    names = sorted({name for point in scored for name in point["parameters"]})
    for name in names:
        numeric = [p for p in scored if isinstance(p["parameters"].get(name), int | float)]
        if not numeric:
            continue
        highlight = {numeric.index(best)} if best in numeric else set()
        parameter_plots.append(
            plot(
                [
                    Series(
                        name,
                        [
                            (
                                p["parameters"][name],
                                p["loss"],
                                f"{name}={p['parameters'][name]!s}: loss {p['loss']:.6g}",
                            )
                            for p in numeric
                        ],
                        highlight,
                    )
                ],
                title=f"{name} vs loss",
                x_label=name,
                y_label="loss",
                lines=False,
            )
        )
    live = is_live(study.request.status)
    data = {"summary": summary, "points": points, "best": best, "live": live}
    return respond(
        request,
        "monitor/hpo_study.html",
        {
            **data,
            "study": study,
            "parameter_names": names,
            "loss_plot": loss_plot,
            "parameter_plots": parameter_plots,
        },
        lambda: data,
    )


def _numeric_series(trials: list[tuple[int, dict[str, Any]]], limit: int = 6) -> list[Series]:
    """A series per numeric key of the parameter sets' parameters (or metrics): (iteration, value) per set."""
    names = sorted({key for _, values in trials for key, value in values.items() if _is_number(value)})[:limit]
    return [
        Series(
            name,
            [
                (iteration, values[name], f"iteration {iteration}: {name} = {values[name]:.6g}")
                for iteration, values in trials
                if _is_number(values.get(name))
            ],
        )
        for name in names
    ]


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@require_GET
@readable
def active_learning(request: HttpRequest) -> HttpResponse:
    """Active-learning loops: status, iteration, stop reason and last decision of each."""
    rows = []
    live = False
    for obj, loop in al_selectors.loop_list():
        # Refresh while a loop still runs (or has not started yet) on an active request.
        live = live or (is_live(obj.status) and (loop is None or not loop.is_terminal))
        rows.append(
            {
                "request_id": obj.pk,
                "scope": obj.scope,
                "name": obj.name,
                "status": obj.get_status_display(),
                "requester": obj.requester,
                "created": obj.created_at,
                "updated": obj.updated_at,
                "loop_status": loop.get_status_display() if loop else None,
                "iteration": loop.iteration if loop else None,
                "stop_reason": loop.stop_reason if loop else "",
                "last_decision": loop.last_decision if loop else None,
                "finished": loop.finished_at if loop else None,
            }
        )
    return respond(
        request, "monitor/active_learning.html", {"rows": rows, "live": live}, lambda: {"loops": rows, "live": live}
    )


@require_GET
@readable
def active_learning_loop(request: HttpRequest, request_id: int) -> HttpResponse:
    """One loop: its iterations (parameter sets, results, task and decision times), plots, the stop reason;
    ``?iteration=k`` lists that iteration's parameter sets and decision steps in full (the audit)."""
    obj = al_selectors.al_request(request_id)
    if obj is None:
        return not_found(request, f"active-learning request {request_id}")
    loop = al_selectors.loop_of(request_id)
    iterations = al_selectors.iterations(loop) if loop else []
    chosen = _int_or_none(request.GET.get("iteration"))
    detail = al_selectors.iteration_detail(loop, chosen) if loop and chosen is not None else None
    live = is_live(obj.status) and (loop is None or not loop.is_terminal)
    summary = {
        "request_id": obj.pk,
        "scope": obj.scope,
        "name": obj.name,
        "request_status": obj.get_status_display(),
        "requester": obj.requester,
        "loop_status": loop.get_status_display() if loop else None,
        "iteration": loop.iteration if loop else None,
        "failed_steps": loop.failed_steps if loop else 0,
        "stop_reason": loop.stop_reason if loop else "",
        "last_decision": loop.last_decision if loop else None,
        "started_at": loop.started_at if loop else None,
        "finished_at": loop.finished_at if loop else None,
        "fork": obj.request_metadata.get("fork") if isinstance(obj.request_metadata, dict) else None,
    }
    data = {"loop": summary, "iterations": iterations, "detail": detail, "live": live}
    sampled = [(row["iteration"], trial) for row in iterations for trial in row["sample"]]
    # A line joins iterations when each has one parameter set; a batch's sets are drawn as points only
    # (a line through them would climb vertically within each iteration).
    one_per_iteration = all(len(row["sample"]) <= 1 for row in iterations)
    metric_plot, parameter_plot = (
        plot(
            _numeric_series([(iteration, _mapping(trial[key])) for iteration, trial in sampled]),
            title=title,
            x_label="iteration",
            y_label=y_label,
            lines=one_per_iteration,
        )
        for key, title, y_label in (
            ("metrics", "Reported metrics per iteration", "metric"),
            ("parameters", "Parameters per iteration", "value"),
        )
    )
    return respond(
        request,
        "monitor/al_loop.html",
        {
            **data,
            "table": [_iteration_cells(row) for row in iterations],
            "obj": obj,
            "metric_plot": metric_plot,
            "parameter_plot": parameter_plot,
            "sample_size": al_selectors.SAMPLE_PER_ITERATION,
            "max_iterations": al_selectors.MAX_ITERATIONS,
        },
        lambda: data,
    )


def _iteration_cells(row: dict[str, Any]) -> dict[str, Any]:
    """One row of the iteration table as text: a hundred iterations of five parameter sets rendered cell by
    cell in the template took ~100 ms; joined here it is a few ms."""
    sample = row["sample"]
    last = row["steps"][-1] if row["steps"] else None
    return {
        "iteration": row["iteration"],
        "parameter_sets": row["parameter_sets"],
        "reported": row["reported"],
        "late": row["late"],
        "memoised": row["memoised"],
        "inputs": "\n".join(compact_json(trial["parameters"], 90) for trial in sample),
        "outputs": "\n".join(
            compact_json(trial["metrics"], 90) if trial["reported"] else "waiting" for trial in sample
        ),
        "more": row["parameter_sets"] - len(sample),
        "task": seconds(row["task_seconds"]),
        "steps": row["steps"],
        "decision": seconds(row["decision_seconds"]),
        "decided": compact_json(last["output"], 120) if last else "",
    }


def _int_or_none(raw: str | None) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        return None
    return int(raw)
