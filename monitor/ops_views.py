"""Operators' pages: statistics per month, service health, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from . import health, selectors
from .metrics import metrics_text
from .rendering import readable, respond


@require_GET
@readable
def statistics(request: HttpRequest) -> HttpResponse:
    stats = selectors.statistics_per_month()
    return respond(request, "monitor/statistics.html", {"stats": stats}, lambda: stats)


@require_GET
@readable
def service_health(request: HttpRequest) -> HttpResponse:
    healthy, probes = health.healthz()
    data = {
        "healthy": healthy,
        "probes": probes,
        "workers": health.workers_seen(),
        "queues": health.queue_lengths(),
        "outbox": selectors.outbox_state(),
    }
    return respond(request, "monitor/health.html", {**data, "live": True}, lambda: data)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 only when the database, the broker and a recent beat answer; 503 otherwise."""
    healthy, probes = health.healthz()
    return JsonResponse(probes, status=200 if healthy else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
