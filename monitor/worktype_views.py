"""Work-type pages: the data carousel dashboard, HPO studies, and the active-learning requests."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from requests_app.models.statuses import RequestType

from . import carousel_selectors, hpo_selectors, selectors, serialize
from .rendering import is_live, not_found, readable, respond
from .svg import Series, plot


def _time_label(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M")  # noqa: DTZ006 — server-local axis ticks


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
        x_format=_time_label,
    )
    request_plot = plot(
        [_time_series(f"request {request_id}", points) for request_id, points in staged["requests"].items()],
        title="Files staged over time per request",
        y_label="files",
        x_format=_time_label,
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


@require_GET
@readable
def active_learning(request: HttpRequest) -> HttpResponse:
    """Active-learning requests, listed generically until the AL work type brings its iterations view."""
    rows = [serialize.request_row(row) for row in selectors.requests_of_type(RequestType.ACTIVE_LEARNING)]
    return respond(request, "monitor/active_learning.html", {"rows": rows}, lambda: {"requests": rows})
