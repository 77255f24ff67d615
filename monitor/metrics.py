"""Prometheus metrics at ``/metrics`` (official ``prometheus-client``), read from the database at scrape time.

A custom collector reads the counters when Prometheus scrapes, so every web process reports the
same figures and nothing is kept in memory between scrapes. Task durations come from the
``Processing`` rows that finished recently (the task adapters are not instrumented per process).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Avg, Count, F
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from requests_app.models import Content, Processing, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus, RequestType

from . import selectors
from .health import beat_state, queue_lengths

DURATION_WINDOW = timedelta(hours=1)


class ServiceCollector(Collector):
    """Requests by status, files released, outbox backlog and age, queue lengths, HPO stock, durations."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        requests = GaugeMetricFamily("idds_requests", "Requests by status", labels=["status"])
        for status, n in sorted(selectors.requests_by_status().items()):
            requests.add_metric([status], n)
        yield requests
        yield GaugeMetricFamily(
            "idds_files_released",
            "Input files processed (released) over all requests",
            value=selectors.files_released(),
        )
        outbox = selectors.outbox_state()
        yield GaugeMetricFamily(
            "idds_outbox_backlog", "Messages not yet delivered to every sink", value=outbox["backlog"]
        )
        oldest = outbox["oldest_undelivered_at"]
        age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("idds_outbox_oldest_age_seconds", "Age of the oldest undelivered message", value=age)
        yield GaugeMetricFamily("idds_outbox_failed", "Messages that failed for good", value=outbox["failed"])
        queues = GaugeMetricFamily("idds_queue_length", "Messages waiting per Celery queue", labels=["queue"])
        for name, length in queue_lengths().items():
            if length is not None:
                queues.add_metric([name], length)
        yield queues
        beat = beat_state()
        yield GaugeMetricFamily(
            "idds_beat_age_seconds",
            "Seconds since a beat-scheduled task last started",
            value=beat["age_seconds"] if beat["age_seconds"] is not None else -1,
        )
        yield self._hpo_stock()
        yield self._durations()

    def _hpo_stock(self) -> GaugeMetricFamily:
        stock = GaugeMetricFamily("idds_hpo_points", "HPO points per study and status", labels=["request_id", "status"])
        live = Transform.objects.filter(transform_type=RequestType.HYPER_PARAMETER_OPT).exclude(
            finished_at__isnull=False
        )
        rows = (
            Content.objects.filter(
                collection__transform__in=live.values("pk"), collection__relation_type=CollectionRelationType.OUTPUT
            )
            .order_by()
            .values_list("collection__request_id", "status")
            .annotate(n=Count("id"))
        )
        for request_id, status, n in rows:
            stock.add_metric([str(request_id), ContentStatus(status).label], n)
        return stock

    def _durations(self) -> GaugeMetricFamily:
        durations = GaugeMetricFamily(
            "idds_processing_seconds_avg", "Mean duration of processings finished in the last hour", labels=["type"]
        )
        rows = (
            Processing.objects.filter(finished_at__gte=timezone.now() - DURATION_WINDOW, submitted_at__isnull=False)
            .order_by()
            .values_list("transform__transform_type")
            .annotate(mean=Avg(F("finished_at") - F("submitted_at")))
        )
        for transform_type, mean in rows:
            durations.add_metric([RequestType(transform_type).label], mean.total_seconds() if mean else 0.0)
        return durations


def metrics_text() -> bytes:
    """The exposition text of one scrape."""
    registry = CollectorRegistry()
    registry.register(ServiceCollector())
    return generate_latest(registry)
