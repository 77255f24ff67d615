"""Reads for the data-carousel dashboard: per tape source, staging over time, stuck files, throttle.

Figures come from the input collections' counters, the ``file_stagein`` outbox rows (one per poll
that landed files, with ``num_contents``) and the processings' poll state; never from contents.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from carousel.models import ThrottleReservation
from requests_app.models import Collection, Message, Processing
from requests_app.models.statuses import (
    PROCESSING_TERMINAL,
    REQUEST_TERMINAL,
    CollectionRelationType,
    RequestType,
)

STAGED_MESSAGE = "file_stagein"
#: Staging curves cover this window; the rate is measured over the last RATE_WINDOW.
CURVE_WINDOW = timedelta(days=7)
RATE_WINDOW = timedelta(minutes=15)
MIN_RATE_SECONDS = 60.0
#: Curve buckets by the span of the curves: a campaign minutes old is drawn per second, not as one minute.
BUCKETS = (
    (timedelta(minutes=10), "second", timedelta(seconds=1)),
    (timedelta(hours=3), "minute", timedelta(minutes=1)),
    (timedelta(days=3), "hour", timedelta(hours=1)),
)
#: Requests drawn one by one on the staging plot (the campaign curve sums all of them).
CURVE_REQUESTS = 8


def _new_source() -> dict[str, Any]:
    keys = ("datasets", "files")
    return {f"{key}_{state}": 0 for key in keys for state in ("queued", "active", "done")} | {
        "bytes_total": 0,
        "bytes_done": 0,
        "remaining_files": 0,
    }


def sources() -> list[dict[str, Any]]:
    """Per tape source: datasets and files queued / active / done, volume total / done."""
    table: dict[str, dict[str, Any]] = defaultdict(_new_source)
    for source, files in ThrottleReservation.objects.filter(admitted=False).values_list("source", "files"):
        row = table[source]
        row["datasets_queued"] += 1
        row["files_queued"] += files
        row["remaining_files"] += files
    terminal = Q(request__status__in=sorted(REQUEST_TERMINAL))
    # One GROUP BY over the stage-in collections that hold the files (the output side, one per
    # request): counters, never contents.
    per_source = (
        Collection.objects.filter(
            relation_type=CollectionRelationType.OUTPUT, transform__transform_type=RequestType.STAGE_IN
        )
        .order_by()
        .values("transform__transform_metadata__source")
        .annotate(
            datasets_done=Count("id", filter=terminal),
            datasets_active=Count("id", filter=~terminal),
            files_done=Sum("processed_files"),
            files_active=Sum(F("total_files") - F("processed_files"), filter=~terminal),
            bytes_total=Sum("bytes"),
            bytes_done=Sum("processed_bytes"),
        )
    )
    for figures in per_source:
        row = table[figures.pop("transform__transform_metadata__source") or "unknown"]
        for key, value in figures.items():
            row[key] += value or 0
        row["remaining_files"] += figures["files_active"] or 0
    rates = _rates_per_source()
    result = []
    for source in sorted(table):
        row = table[source]
        # The rate is the current one: a source with nothing left to stage has none (not the average of
        # its last files over the window), and no ETA.
        rate = rates.get(source, 0.0) if row["remaining_files"] else None
        eta = row["remaining_files"] / rate if rate else None
        result.append(
            {
                "source": source,
                **row,
                "rate_files_per_s": round(rate, 3) if rate is not None else None,
                "eta_seconds": eta,
            }
        )
    return result


def _rates_per_source() -> dict[str, float]:
    """Files staged per second, per source, over the last RATE_WINDOW (or since staging began, if later)."""
    now = timezone.now()
    rows = (
        Message.objects.filter(msg_type=STAGED_MESSAGE, created_at__gte=now - RATE_WINDOW)
        .order_by()
        .values("transform__transform_metadata__source")
        .annotate(n=Sum("num_contents"), first=Min("created_at"))
        .values_list("transform__transform_metadata__source", "n", "first")
    )
    # A campaign that started ten minutes ago is measured over those ten minutes, not the hour.
    return {
        source or "unknown": (n or 0) / max(MIN_RATE_SECONDS, (now - first).total_seconds())
        for source, n, first in rows
    }


def _bucket(first: datetime | None, last: datetime | None) -> tuple[str, timedelta]:
    """The bucket (Trunc kind, width) for curves spanning ``first`` .. ``last``."""
    span = (last - first) if first and last else timedelta(0)
    for longest, kind, width in BUCKETS:
        if span <= longest:
            return kind, width
    return "day", timedelta(days=1)


def staged_over_time() -> dict[str, Any]:
    """Cumulative files staged per time bucket: the campaign and the latest requests one by one."""
    now = timezone.now()
    messages = Message.objects.filter(msg_type=STAGED_MESSAGE, created_at__gte=now - CURVE_WINDOW)
    span = messages.aggregate(first=Min("created_at"), last=Max("created_at"))
    kind, width = _bucket(span["first"], span["last"])
    campaign = dict(
        messages.order_by()
        .annotate(bucket=Trunc("created_at", kind))
        .values("bucket")
        .annotate(n=Sum("num_contents"))
        .values_list("bucket", "n")
    )
    latest = list(messages.order_by("-request_id").values_list("request_id", flat=True).distinct()[:CURVE_REQUESTS])
    per_request: dict[int, dict[datetime, int]] = defaultdict(dict)
    rows = (
        messages.filter(request_id__in=latest)
        .order_by()
        .annotate(bucket=Trunc("created_at", kind))
        .values("bucket", "request_id")
        .annotate(n=Sum("num_contents"))
        .values_list("bucket", "request_id", "n")
    )
    for bucket, request_id, n in rows:
        per_request[request_id][bucket] = n or 0
    return {
        "bucket": kind,
        "campaign": _cumulative(campaign, width),
        "requests": {request_id: _cumulative(per_request[request_id], width) for request_id in sorted(per_request)},
    }


def _cumulative(counts: dict[datetime, int], width: timedelta) -> list[tuple[str, int]]:
    """Running totals per bucket, from 0 one bucket before the first: a request whose files all landed
    in one bucket is a step from 0, not a lone dot."""
    if not counts:
        return []
    total, points = 0, [((min(counts) - width).isoformat(), 0)]
    for bucket in sorted(counts):
        total += counts[bucket]
        points.append((bucket.isoformat(), total))
    return points


def stuck_rules() -> list[dict[str, Any]]:
    """Live stage-in processings with stuck files or re-stages: per rule group, its rules and files."""
    rows = (
        Processing.objects.filter(transform__transform_type=RequestType.STAGE_IN)
        .exclude(status__in=sorted(PROCESSING_TERMINAL))
        .values_list("id", "request_id", "processing_metadata__rules", "processing_metadata__stuck_count")
        .order_by("-id")[:200]
    )
    result = []
    for processing_id, request_id, rules, stuck_count in rows:
        rules = rules or []
        if not stuck_count and len(rules) <= 1:
            continue
        result.append(
            {
                "processing_id": processing_id,
                "request_id": request_id,
                "stuck_files": stuck_count or 0,
                "restages": max(0, len(rules) - 1),
                "rules": [
                    {"rule_ids": group.get("rule_ids", []), "created_at": group.get("created_at", "")}
                    for group in rules
                ],
            }
        )
    return result


def throttled() -> list[dict[str, Any]]:
    """Requests waiting in the throttle: their source, destination, size and what they wait on."""
    reasons = {
        "queue": "an older request for the same source waits first",
        "source": "the source tape RSE has no room",
        "destination": "the destination has no room",
    }
    waiting = ThrottleReservation.objects.filter(admitted=False).order_by("created_at")[:200]
    return [
        {
            "request_id": entry.request_id,
            "source": entry.source,
            "destination": entry.destination,
            "files": entry.files,
            "waiting_on": entry.waiting_on,
            "why": reasons.get(entry.waiting_on, "waiting for the clerk's next admission"),
            "since": entry.created_at,
        }
        for entry in waiting
    ]
