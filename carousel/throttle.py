"""Throttling like a production carousel: how many files a source (and a destination) may have in flight.

A request is admitted (its rule created) only when its source tape RSE and its destination have
room; otherwise it waits in Throttling. "In flight" = files of admitted requests that are neither
on disk nor stuck (a stuck file no longer occupies the tape queue).

Per source: at most ``max_files_per_source`` files queued or staging (default 10,000, as the
workload system does), and a new request joins only while at most ``max_staging_ratio`` of that
window (default 50 %) is still in flight, so the tape system receives large batches it can sort
into tape order instead of a trickle. A request bigger than the window is admitted alone, when
the source is idle. The destination has its own cap (``max_files_per_destination``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ThrottleLimits:
    """The caps; ``from_settings()`` reads the ``IDDS_CAROUSEL_*`` settings."""

    max_files_per_source: int = 10_000
    max_staging_ratio: float = 0.5
    max_files_per_destination: int = 100_000

    @classmethod
    def from_settings(cls) -> ThrottleLimits:
        return cls(
            max_files_per_source=int(getattr(settings, "IDDS_CAROUSEL_MAX_FILES_PER_SOURCE", cls.max_files_per_source)),
            max_staging_ratio=float(getattr(settings, "IDDS_CAROUSEL_MAX_STAGING_RATIO", cls.max_staging_ratio)),
            max_files_per_destination=int(
                getattr(settings, "IDDS_CAROUSEL_MAX_FILES_PER_DESTINATION", cls.max_files_per_destination)
            ),
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
