"""One poll of a stage-in processing: what landed, what is stuck, what to re-stage, what failed for good.

State between polls lives in ``processing_metadata`` (written by the carrier in the same
transaction as the content updates, so a crash between two polls loses nothing):

* ``rules``: one entry per rule group — the main rule, then each re-stage — with its rule ids,
  its creation time on the backend clock, the source it avoids, and ``since``: the latest lock
  change already applied (each group keeps its own, as groups run on different drives).
* ``stuck``: files whose latest attempt is stuck, with the index of that group; ``stuck_count``
  feeds the throttle (a stuck file no longer occupies its source's queue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from carousel.backends.base import StagingBackend
from carousel.rucio_events import landed_after
from requests_app.models import Collection, Content, Processing
from requests_app.models.statuses import CollectionRelationType, ContentStatus

# Contents still waiting for their file (not Available, not finally failed).
PENDING = (ContentStatus.NEW, ContentStatus.PROCESSING, ContentStatus.FAILED, ContentStatus.LOST, ContentStatus.MAPPED)
# A poll at the instant of a landing could see it a hair early; aim just after it.
EVENT_MARGIN_SECONDS = 0.02
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class PollOutcome:
    """What one poll found, in landing order."""

    landed: list[str] = field(default_factory=list)
    final_failed: list[str] = field(default_factory=list)
    remaining: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    next_poll_in: float | None = None
    note: str | None = None


def pending_names(processing: Processing) -> set[str]:
    """Names of the output files not yet Available nor finally failed (one query)."""
    return set(
        Content.objects.filter(
            collection__transform_id=processing.transform_id,
            collection__relation_type=CollectionRelationType.OUTPUT,
            status__in=PENDING,
        ).values_list("name", flat=True)
    )


def _collect(
    backend: StagingBackend, groups: list[dict[str, Any]], stuck: dict[str, int]
) -> list[tuple[datetime, str]]:
    """Read every group's lock changes since its cursor; update cursors and ``stuck`` in place."""
    landed: list[tuple[datetime, str]] = []
    for index, group in enumerate(groups):
        landed.extend(_collect_group(backend, index, group, stuck))
    landed.sort(key=lambda pair: pair[0])
    return landed


def _collect_group(
    backend: StagingBackend, index: int, group: dict[str, Any], stuck: dict[str, int]
) -> list[tuple[datetime, str]]:
    """One group's lock changes since its cursor (every lock, for a backend without a change filter)."""
    landed: list[tuple[datetime, str]] = []
    since = _parse(group.get("since"))
    latest = since
    for lock in backend.list_locks_many(group["rule_ids"], since=since):
        moment = lock.updated_at
        # Backends without a change filter (Rucio) return every lock: skip what was applied.
        if since is not None and moment is not None and moment <= since:
            continue
        if lock.state == "OK":
            landed.append((moment or _EARLIEST, lock.name))
            stuck.pop(lock.name, None)
        elif lock.state == "STUCK":
            stuck[lock.name] = index
            if lock.source:
                group.setdefault("stuck_sources", {})[lock.source] = True
        else:
            continue
        if moment is not None and (latest is None or moment > latest):
            latest = moment
        if not group.get("destination") and lock.rse:
            group["destination"] = lock.rse
    group["since"] = latest.isoformat() if latest else None
    return landed


def _collect_from_events(
    backend: StagingBackend,
    processing: Processing,
    groups: list[dict[str, Any]],
    stuck: dict[str, int],
    destination: str,
    cursor: int,
) -> tuple[list[tuple[datetime, str]], int]:
    """The fast path (``backend.transfer_events``): files landed on ``destination`` from the recorded
    transfer events after ``cursor``; a group's locks are listed only when its rule's counters
    disagree with what is known (see ``_needs_listing``). Returns (landed, new cursor)."""
    names = Content.objects.filter(
        collection__transform_id=processing.transform_id,
        collection__relation_type=CollectionRelationType.OUTPUT,
        status__in=PENDING,
    ).values("name")
    from_events, cursor = landed_after(names_query=names, destination=destination, after=cursor)
    landed = [(moment or _EARLIEST, name) for moment, name in from_events]
    for _, name in landed:
        stuck.pop(name, None)
    released = pending_released(processing)
    for index, group in enumerate(groups):
        if _needs_listing(backend, index, group, known_ok=released + len(landed)):
            group["listings"] = group.get("listings", 0) + 1
            landed.extend(_collect_group(backend, index, group, stuck))
    landed.sort(key=lambda pair: pair[0])
    return landed, cursor


def _needs_listing(backend: StagingBackend, index: int, group: dict[str, Any], *, known_ok: int) -> bool:
    """Whether a group's locks must be listed although transfer events arrive: re-stage groups
    (one rule per file, small) always; the dataset rule when its counters (one cheap read) show a
    stuck lock not seen yet, OK locks when it was submitted (files there before it), or more OK
    locks ``grace`` seconds ago than files known landed now (an event was lost or is late)."""
    if index > 0 or len(group["rule_ids"]) != 1:
        return True
    info = backend.get_rule(group["rule_ids"][0])
    now = backend.now()
    grace = timedelta(seconds=settings.IDDS_RUCIO_EVENTS_GRACE_SECONDS)
    checkpoint = group.get("ok_checkpoint")
    checked_at = _parse(checkpoint["at"]) if checkpoint else None
    if checked_at is None:
        # The first look: locks OK when the rule was submitted (files on the destination before it,
        # an adopted rule) came with no message.
        behind = group.get("ok_at_submit", 0) > known_ok
    else:
        behind = now - checked_at >= grace and known_ok < checkpoint["ok"]
    new_stuck = info.locks_stuck_cnt > group.get("stuck_seen", 0)
    if checked_at is None or now - checked_at >= grace or behind:
        group["ok_checkpoint"] = {"at": now.isoformat(), "ok": info.locks_ok_cnt}
    group["stuck_seen"] = info.locks_stuck_cnt
    return behind or new_stuck


def pending_released(processing: Processing) -> int:
    """Files of the processing already Available, from the output collection's counters (one row)."""
    return sum(
        Collection.objects.filter(
            transform_id=processing.transform_id, relation_type=CollectionRelationType.OUTPUT
        ).values_list("processed_files", flat=True)
    )


def pending_estimate(processing: Processing) -> int:
    """Files not yet Available nor failed, from the output collection's counters (one row)."""
    counters = Collection.objects.filter(
        transform_id=processing.transform_id, relation_type=CollectionRelationType.OUTPUT
    ).values_list("total_files", "processed_files", "failed_files")
    return sum(total - processed - failed for total, processed, failed in counters)


def poll_stagein(
    *, backend: StagingBackend, processing: Processing, request_metadata: dict[str, Any], source: str
) -> PollOutcome:
    """Poll every rule of the processing, decide re-stages and final failures."""
    meta = processing.processing_metadata
    groups: list[dict[str, Any]] = [dict(group) for group in meta.get("rules", [])]
    stuck: dict[str, int] = dict(meta.get("stuck", {}))
    cursor = meta.get("events_cursor")
    if getattr(backend, "transfer_events", False):
        destination = request_metadata.get("dest_rse") or next(
            (g.get("destination") for g in groups if g.get("destination")), ""
        )
        landed, cursor = _collect_from_events(backend, processing, groups, stuck, destination, int(cursor or 0))
    else:
        landed = _collect(backend, groups, stuck)
    landed_names = list(dict.fromkeys(name for _, name in landed))
    exhausted = len(groups) - 1 >= int(request_metadata.get("max_extra_rules", 1))
    due_at = _parse(groups[-1]["created_at"]) + timedelta(seconds=float(request_metadata["max_waiting_time"]))
    restage_due = not exhausted and backend.now() >= due_at
    outcome = PollOutcome(landed=landed_names)
    # The counters say how many files are missing; the names are needed only to finish, to fail
    # stuck files or to re-stage. The estimate never overshoots (a file announced twice only
    # lowers it), so "nothing missing" is always checked against the names.
    estimate = pending_estimate(processing) - len(landed_names)
    if estimate > 0 and not restage_due and not (exhausted and stuck):
        remaining_count = estimate
    else:
        remaining = pending_names(processing) - set(landed_names)
        stuck = {name: index for name, index in stuck.items() if name in remaining}
        if exhausted:
            # No rule left to try: a file stuck in the last group has failed for good.
            last = len(groups) - 1
            outcome.final_failed = sorted(name for name, index in stuck.items() if index == last)
            remaining -= set(outcome.final_failed)
        if remaining and restage_due:
            outcome.note = _restage(backend, processing, groups, remaining, stuck, request_metadata, source)
            stuck = {name: index for name, index in stuck.items() if name not in remaining}
        remaining_count = len(remaining)
    outcome.remaining = remaining_count
    outcome.metadata = {
        "rules": groups,
        "stuck": stuck,
        "stuck_count": len(stuck),
        "remaining_files": remaining_count,
    }
    if cursor is not None:
        outcome.metadata["events_cursor"] = cursor
    if remaining_count:
        outcome.next_poll_in = _next_poll_in(backend, groups, due_at if not exhausted else None)
    return outcome


def _restage(
    backend: StagingBackend,
    processing: Processing,
    groups: list[dict[str, Any]],
    remaining: set[str],
    stuck: dict[str, int],
    request_metadata: dict[str, Any],
    source: str,
) -> str:
    """A new rule for the files still missing, reading from anywhere but the source that failed."""
    destination = next((g.get("destination") for g in groups if g.get("destination")), "")
    destination = request_metadata.get("dest_rse") or destination
    if not destination:
        return "cannot re-stage: the destination RSE is unknown"
    stuck_sources = [src for g in groups for src in g.get("stuck_sources", {})]
    avoid = stuck_sources[-1] if stuck_sources else source
    scope = request_metadata["scope"]
    number = len(groups)
    rule_ids = backend.create_rule(
        backend.restage_request(
            files=[(scope, name) for name in sorted(remaining)],
            rse_expression=destination,
            avoid_source=avoid or None,
            lifetime=int(request_metadata.get("lifetime") or 0) or None,
            comment=f"idds processing {processing.pk} restage {number}",
        )
    )
    created = backend.now()
    groups.append(
        {
            "kind": "restage",
            "rule_ids": rule_ids,
            "files": len(remaining),
            "stuck_files": sum(1 for name in remaining if name in stuck),
            "avoid_source": avoid,
            "destination": destination,
            "created_at": created.isoformat(),
            # Changes before the rule existed are not its own.
            "since": None,
        }
    )
    return f"re-staged {len(remaining)} missing file(s) avoiding {avoid or 'no source'}"


def _next_poll_in(backend: StagingBackend, groups: list[dict[str, Any]], restage_at: datetime | None) -> float | None:
    """Seconds until the next lock change or re-stage is due, if the backend can tell."""
    upcoming = [backend.next_change_at(group["rule_ids"], after=_parse(group.get("since"))) for group in groups]
    if None in upcoming:
        # The backend cannot tell (Rucio): the carrier's back-off decides.
        return None
    candidates = [backend.seconds_until(moment) for moment in upcoming]
    if restage_at is not None:
        candidates.append(backend.seconds_until(restage_at))
    return min(min(candidates) + EVENT_MARGIN_SECONDS, settings.IDDS_POLL_MAX_SECONDS)
