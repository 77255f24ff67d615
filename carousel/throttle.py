"""Throttling like a production carousel: how many files a source (and a destination) may have in flight.

A request is admitted (its rule created) only when its source tape RSE and its destination have
room; otherwise it waits in Throttling. "In flight" = files of admitted requests that are neither
on disk nor stuck (a stuck file no longer occupies the tape queue).

Per source: at most ``max_files_per_source`` files queued or staging (default 10,000, as the
workload system does), and a new request joins only while at most ``max_staging_ratio`` of that
window (default 50 %) is still in flight, so the tape system receives large batches it can sort
into tape order instead of a trickle. A request bigger than the window is admitted alone, when
the source is idle. The destination has its own cap (``max_files_per_destination``).

When files land or a request ends, ``offer_room`` hands the freed room to the waiting requests
at once (debounced per source); the watchdog's sweep is the safety net.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from carousel.models import ThrottleBucket, ThrottleReservation
from requests_app import handoffs
from requests_app.models import Collection, Processing, Request, Transform
from requests_app.models.statuses import REQUEST_TERMINAL, CollectionRelationType

# Offers of freed room to waiting requests, debounced per source in each process (Django's cache).
WAKE_KEY = "carousel:wake-throttled"
WAKE_SECONDS = 1.0


@dataclass(frozen=True)
class ThrottleLimits:
    """The caps; ``from_settings()`` reads the ``IDDS_CAROUSEL_*`` settings."""

    max_files_per_source: int = 10_000
    max_staging_ratio: float = 0.5
    max_files_per_destination: int = 100_000

    @classmethod
    def from_settings(cls) -> ThrottleLimits:
        return cls(
            max_files_per_source=settings.IDDS_CAROUSEL_MAX_FILES_PER_SOURCE,
            max_staging_ratio=settings.IDDS_CAROUSEL_MAX_STAGING_RATIO,
            max_files_per_destination=settings.IDDS_CAROUSEL_MAX_FILES_PER_DESTINATION,
        )


def admits(limits: ThrottleLimits, *, inflight: int, files: int) -> bool:
    """Whether a source with ``inflight`` files takes a request of ``files`` more."""
    if inflight <= 0:
        return True
    return inflight + files <= limits.max_files_per_source and inflight <= (
        limits.max_files_per_source * limits.max_staging_ratio
    )


def admits_destination(limits: ThrottleLimits, *, inflight: int, files: int) -> bool:
    """Whether a destination with ``inflight`` files takes a request of ``files`` more."""
    return inflight <= 0 or inflight + files <= limits.max_files_per_destination


def _keys(source: str, destination: str) -> list[str]:
    return sorted({f"source:{source}", f"destination:{destination}"})


def inflight(*, source: str | None = None, destination: str | None = None) -> int:
    """Files of admitted, live requests from ``source`` (or to ``destination``) not yet on disk nor stuck.

    A few queries whatever the number of files: the output collections' counters and the stuck
    count the work type keeps on each processing.
    """
    reservations = ThrottleReservation.objects.filter(admitted=True)
    reservations = (
        reservations.filter(source=source) if source is not None else reservations.filter(destination=destination)
    )
    files = dict(reservations.values_list("request_id", "files"))
    if not files:
        return 0
    live = set(Request.objects.filter(pk__in=files).exclude(status__in=REQUEST_TERMINAL).values_list("pk", flat=True))
    remaining = {pk: files[pk] for pk in live}
    for request_id, total, processed, failed in Collection.objects.filter(
        request_id__in=live, relation_type=CollectionRelationType.OUTPUT
    ).values_list("request_id", "total_files", "processed_files", "failed_files"):
        remaining[request_id] = total - processed - failed
    for request_id, stuck in Processing.objects.filter(request_id__in=live).values_list(
        "request_id", "processing_metadata__stuck_count"
    ):
        if isinstance(stuck, int):
            remaining[request_id] -= stuck
    return sum(max(0, count) for count in remaining.values())


def _ended_requests():
    """Ids of requests that ended, as a subquery (one statement with whatever uses it)."""
    return Request.objects.filter(status__in=REQUEST_TERMINAL).values("pk")


def _ended(request_ids) -> set[int]:
    return set(_ended_requests().filter(pk__in=request_ids).values_list("pk", flat=True))


def reservation_of(request_id: int) -> ThrottleReservation | None:
    """The throttle's entry for a request offered before (its size and source are known then)."""
    return ThrottleReservation.objects.filter(request_id=request_id).first()


def throttle_admit(
    *, request_id: int, files: int, source: str, destination: str, limits: ThrottleLimits | None = None
) -> str | None:
    """Admit a request (None) or say why it waits. Serialised per source and destination by row locks."""
    limits = limits or ThrottleLimits.from_settings()
    keys = _keys(source, destination)
    with transaction.atomic():
        ThrottleBucket.objects.bulk_create([ThrottleBucket(key=key) for key in keys], ignore_conflicts=True)
        list(ThrottleBucket.objects.select_for_update().filter(key__in=keys).order_by("key"))
        entry, _ = ThrottleReservation.objects.get_or_create(
            request_id=request_id, defaults={"source": source, "destination": destination, "files": files}
        )
        if entry.admitted:
            return None
        # Entries of requests that ended (aborted while waiting, finished) leave the queue for good.
        of_source = ThrottleReservation.objects.filter(source=source)
        of_source.filter(request_id__in=_ended_requests()).delete()
        ahead = of_source.filter(admitted=False, request_id__lt=request_id).count()
        if ahead:
            return _wait(entry, "queue", f"waiting behind {ahead} older request(s) for source {source}")
        in_source = inflight(source=source)
        if not admits(limits, inflight=in_source, files=files):
            return _wait(
                entry,
                "source",
                f"source {source} has {in_source} files queued or staging; this request adds {files} "
                f"(cap {limits.max_files_per_source}, new requests join while at most "
                f"{int(limits.max_files_per_source * limits.max_staging_ratio)} are in flight)",
            )
        in_destination = inflight(destination=destination)
        if not admits_destination(limits, inflight=in_destination, files=files):
            return _wait(
                entry,
                "destination",
                f"destination {destination} has {in_destination} files staging; this request adds {files} "
                f"(cap {limits.max_files_per_destination})",
            )
        ThrottleReservation.objects.filter(pk=entry.pk).update(admitted=True, admitted_at=timezone.now(), waiting_on="")
    return None


def _wait(entry: ThrottleReservation, waiting_on: str, reason: str) -> str:
    if entry.waiting_on != waiting_on:
        ThrottleReservation.objects.filter(pk=entry.pk).update(waiting_on=waiting_on)
    return reason


def throttled_request_ids(*, source: str | None = None, destination: str | None = None) -> list[int]:
    """The head of every source's waiting queue (live requests only): the ones worth offering again.

    With ``source`` and ``destination`` (where room just opened): the head for that source, and
    heads of other sources that wait on that destination's cap.
    """
    waiting = list(
        ThrottleReservation.objects.filter(admitted=False)
        .order_by("request_id")
        .values_list("request_id", "source", "destination", "waiting_on")
    )
    ended = _ended([request_id for request_id, *_ in waiting])
    heads: dict[str, tuple[int, str, str]] = {}
    for request_id, its_source, its_destination, waiting_on in waiting:
        if request_id not in ended:
            heads.setdefault(its_source, (request_id, its_destination, waiting_on))
    if source is not None:
        heads = {
            its_source: head
            for its_source, head in heads.items()
            if its_source == source or (head[2] == "destination" and head[1] == destination)
        }
    return sorted(request_id for request_id, *_ in heads.values())


def offer_room(transform: Transform, *, debounce: bool = False) -> None:
    """Offer the room this transform made at its source and destination to the waiting requests
    that can use it (the throttle's heads), right away.

    Polls land files every second or so on a busy source, so with ``debounce`` a source gets at
    most one immediate offer per WAKE_SECONDS and one trailing offer at the end of that window,
    which sees every landing in between; the watchdog is the safety net.
    """
    source = transform.transform_metadata.get("source", "")
    destination = transform.transform_metadata.get("destination", "")
    delay = 0.0
    if debounce and not cache.add(f"{WAKE_KEY}:{source}", True, timeout=WAKE_SECONDS):
        if not cache.add(f"{WAKE_KEY}:{source}:trailing", True, timeout=WAKE_SECONDS):
            return
        delay = WAKE_SECONDS
    for request_id in throttled_request_ids(source=source, destination=destination):
        handoffs.request_retry_admission(request_id, countdown=delay)
