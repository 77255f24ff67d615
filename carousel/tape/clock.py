"""The simulated clock shared by every process through the ``SimClock`` row.

``IDDS_TAPE_TIME_SCALE`` says how many simulated seconds pass per real second. Scale 0 means
"instant": the clock used to schedule new work stands still and every scheduled event counts as
already past (``horizon`` is the far future), so a benchmark sees files land as fast as the
service can ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from carousel.models import SimClock

# Far enough to be after every scheduled event, near enough for datetime arithmetic.
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Clock:
    """A snapshot of the clock anchor, with conversions between simulated and real time."""

    real_origin: datetime
    sim_origin: datetime
    scale: float

    def sim_now(self, real_now: datetime | None = None) -> datetime:
        """Simulated time now: the start time of work scheduled now."""
        real_now = real_now or timezone.now()
        return self.sim_origin + (real_now - self.real_origin) * self.scale

    def horizon(self, real_now: datetime | None = None) -> datetime:
        """Events at or before this simulated time have happened."""
        return FAR_FUTURE if self.scale == 0 else self.sim_now(real_now)

    def real_time_of(self, sim_time: datetime) -> datetime:
        """The real time at which a simulated event happens (its scheduling time when scale is 0)."""
        if self.scale == 0:
            return self.real_origin
        return self.real_origin + (sim_time - self.sim_origin) / self.scale


def configured_scale() -> float:
    return float(getattr(settings, "IDDS_TAPE_TIME_SCALE", 1.0))


def current_clock() -> Clock:
    """The clock anchor, created on first use and re-anchored when the configured scale changed."""
    scale = configured_scale()
    now = timezone.now()
    # get_or_create survives two processes creating the row at once.
    row, _ = SimClock.objects.get_or_create(pk=1, defaults={"real_origin": now, "sim_origin": now, "scale": scale})
    if row.scale != scale:
        with transaction.atomic():
            row = SimClock.objects.select_for_update().get(pk=1)
            if row.scale != scale:
                # Continue from the simulated time reached so far under the old scale.
                now = timezone.now()
                reached = Clock(row.real_origin, row.sim_origin, row.scale).sim_now(now)
                row.real_origin, row.sim_origin, row.scale = now, reached, scale
                row.save()
    return Clock(row.real_origin, row.sim_origin, row.scale)


def stored_clock() -> Clock:
    """The clock as the service's processes anchored it, without re-anchoring it to this process's
    scale: for observers (progress bars, benchmarks) that may run with another setting."""
    row = SimClock.objects.filter(pk=1).first()
    if row is None:
        return current_clock()
    return Clock(row.real_origin, row.sim_origin, row.scale)
