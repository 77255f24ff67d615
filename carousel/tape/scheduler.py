"""Drive scheduling: when each file of a new rule lands, computed once for the whole rule.

Pure functions over plain values (no database), so the simulator, the calibration and the tests
share them. Times are POSIX seconds in *simulated* time.

The model of a recall (docs/idds-reference.md §5): files are grouped by cartridge and read in tape
order; each cartridge goes to the drive that already holds it, else to the drive of its library
that frees up first (a FIFO queue per library). A cartridge that is not mounted costs a mount;
each jump along the tape costs positioning proportional to its length (up to ``max_seek``), and
reading a file costs ``bytes / throughput``. Files read back to back need no positioning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# Even a short locate stops and restarts the tape: a few seconds at least.
MIN_SEEK_SECONDS = 4.0


@dataclass(frozen=True)
class Timing:
    """Hardware timing of a library."""

    mount_seconds: float
    max_seek_seconds: float
    throughput_bps: float


@dataclass
class DriveState:
    """A drive's queue end: busy until ``free_at``, holding ``tape`` with the head at ``head``."""

    drive_id: int
    library_id: int
    free_at: float
    tape: int | None = None
    head: int = 0


class ReadItem(NamedTuple):
    """One file to read from one copy (a tuple: a rule can hold 400k of them)."""

    key: int
    tape: int
    position: int
    bytes: int
    fails: bool = False


def seek_seconds(head: int, position: int, capacity: int, timing: Timing) -> float:
    """Positioning time from ``head`` to ``position`` on a tape of ``capacity`` bytes."""
    if head == position:
        return 0.0
    distance = abs(position - head) / max(capacity, 1)
    return min(timing.max_seek_seconds, MIN_SEEK_SECONDS + distance * timing.max_seek_seconds)


def schedule_reads(
    items: Iterable[ReadItem],
    *,
    start: float,
    drives: list[DriveState],
    tape_library: dict[int, int],
    tape_capacity: dict[int, int],
    timing: dict[int, Timing],
) -> dict[int, float]:
    """Queue ``items`` on ``drives`` (updated in place) and return each item's event time.

    The event time is when the file is on disk, or, for an item that ``fails``, when the drive
    gave up on it (its lock turns STUCK then).
    """
    by_tape: dict[int, list[ReadItem]] = defaultdict(list)
    for item in items:
        by_tape[item.tape].append(item)
    drives_of: dict[int, list[DriveState]] = defaultdict(list)
    for drive in drives:
        drives_of[drive.library_id].append(drive)
    events: dict[int, float] = {}
    # Cartridges in label (id) order: deterministic, and how an operator's queue would list them.
    for tape in sorted(by_tape):
        library = tape_library[tape]
        candidates = drives_of.get(library)
        if not candidates:
            raise ValueError(f"tape {tape} is in library {library}, which has no drives")
        holding = [drive for drive in candidates if drive.tape == tape]
        drive = holding[0] if holding else min(candidates, key=lambda d: (d.free_at, d.drive_id))
        lib_timing = timing[library]
        clock = max(drive.free_at, start)
        if drive.tape != tape:
            clock += lib_timing.mount_seconds
            drive.tape, drive.head = tape, 0
        for item in sorted(by_tape[tape], key=lambda i: i.position):
            clock += seek_seconds(drive.head, item.position, tape_capacity[tape], lib_timing)
            clock += item.bytes / lib_timing.throughput_bps
            drive.head = item.position + item.bytes
            events[item.key] = clock
        drive.free_at = clock
    return events
