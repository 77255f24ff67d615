"""The staging curve of a campaign, computed in memory with the simulator's own scheduling.

Used to calibrate ``TapeConfig`` against production (99 % of the reference campaign on disk in
about four days, stuck files days later) without running the service: datasets are admitted per
source under the same throttle as the work type (``carousel.throttle.admits``), with an ideal
poller that reacts at the instant a file lands, and stuck files are re-staged from their second
copy ``max_waiting_time`` after their rule was created.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from carousel.throttle import ThrottleLimits, admits

from .catalogue import DEFAULT_SEED, DatasetSpec, TapeConfig, lay_out
from .scheduler import DriveState, ReadItem, Timing, schedule_reads

_LAND, _STUCK, _RESTAGE = 0, 1, 2


@dataclass(frozen=True)
class Curve:
    """Landing times (seconds after the campaign started) of every file, sorted."""

    landed: list[float]
    total: int

    def time_to_fraction(self, fraction: float) -> float:
        """Seconds until ``fraction`` of all files were on disk."""
        index = max(0, min(len(self.landed) - 1, int(fraction * self.total + 0.999999) - 1))
        return self.landed[index]

    def summary(self) -> dict[str, float]:
        """Days to 50/90/99/99.9/100 % and the daily landed fraction."""
        day = 86_400.0
        result = {f"days_to_{label}": round(self.time_to_fraction(f) / day, 3) for label, f in _MILESTONES}
        days = int(self.landed[-1] // day) + 1 if self.landed else 0
        counts = [0] * days
        for moment in self.landed:
            counts[int(moment // day)] += 1
        running = 0
        for number, count in enumerate(counts, start=1):
            running += count
            result[f"fraction_after_day_{number}"] = round(running / self.total, 5)
        return result


_MILESTONES = (("50pct", 0.5), ("90pct", 0.9), ("99pct", 0.99), ("99_9pct", 0.999), ("100pct", 1.0))


def simulate_campaign(
    datasets: Sequence[DatasetSpec],
    config: TapeConfig,
    *,
    limits: ThrottleLimits | None = None,
    max_waiting_time: float = 3 * 86_400,
    seed: int = DEFAULT_SEED,
) -> Curve:
    """Stage every dataset (submitted at time 0, in order) and return the landing curve."""
    limits = limits or ThrottleLimits()
    layout = lay_out(datasets, config, seed=seed)
    timing = {
        lib: Timing(config.mount_seconds, config.max_seek_seconds, config.throughput_bps)
        for lib in range(config.libraries)
    }
    drives = [
        DriveState(drive_id=lib * 100 + n, library_id=lib, free_at=0.0)
        for lib in range(config.libraries)
        for n in range(config.drives_per_library)
    ]
    tape_library = {index: library for index, (library, _) in enumerate(layout.tapes)}
    capacity = dict.fromkeys(tape_library, config.tape_capacity)
    files_of: dict[int, list[int]] = defaultdict(list)
    for index, laid in enumerate(layout.files):
        files_of[laid.dataset].append(index)
    waiting: dict[int, deque[int]] = defaultdict(deque)
    for index in range(len(datasets)):
        waiting[layout.dataset_library[index]].append(index)
    inflight: dict[int, int] = defaultdict(int)
    events: list[tuple[float, int, int, int]] = []
    landed: list[float] = []

    def admit(library: int, now: float) -> None:
        queue = waiting[library]
        while queue and admits(limits, inflight=inflight[library], files=datasets[queue[0]].files):
            dataset = queue.popleft()
            inflight[library] += datasets[dataset].files
            items = [
                ReadItem(
                    i, layout.files[i].tape, layout.files[i].position, layout.files[i].bytes, layout.files[i].stuck
                )
                for i in files_of[dataset]
            ]
            moments = schedule_reads(
                items, start=now, drives=drives, tape_library=tape_library, tape_capacity=capacity, timing=timing
            )
            for item in items:
                heapq.heappush(events, (moments[item.key], _STUCK if item.fails else _LAND, item.key, library))
            if any(item.fails for item in items):
                heapq.heappush(events, (now + max_waiting_time, _RESTAGE, dataset, library))

    for library in list(waiting):
        admit(library, 0.0)
    restaged: set[int] = set()
    while events:
        moment, kind, key, library = heapq.heappop(events)
        if kind == _LAND:
            landed.append(moment)
            if key not in restaged:
                inflight[library] -= 1
        elif kind == _STUCK:
            # A stuck file no longer occupies the source's queue.
            inflight[library] -= 1
        else:
            stuck = [i for i in files_of[key] if layout.files[i].stuck]
            restaged.update(stuck)
            items = [
                ReadItem(i, layout.files[i].copy_tape, layout.files[i].copy_position, layout.files[i].bytes)
                for i in stuck
            ]
            moments = schedule_reads(
                items, start=moment, drives=drives, tape_library=tape_library, tape_capacity=capacity, timing=timing
            )
            for item in items:
                heapq.heappush(events, (moments[item.key], _LAND, item.key, library))
        admit(library, moment)
    return Curve(landed=landed, total=len(layout.files))
