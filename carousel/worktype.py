"""The stage-in work type: a tape dataset staged file by file, each file released as it lands.

Life of a request (docs/architecture.md; docs/idds-reference.md §5):

* ``validate``: scope/name, workload_id, rule_id or src_rse/dest_rse, max_waiting_time, lifetime,
  priority (``carousel.metadata``).
* ``admit``: the throttle (``carousel.throttle``) holds the request in Throttling while its source
  or destination is full; a request that will join a live transform is never held.
* ``dedup_key``: a second request for the same dataset and workload joins the live transform.
* ``plan``: one output content per file, created in bulk by the transformer.
* ``submit``: create the rule, tagged ``idds processing <id>`` so a repeated submit adopts it, or
  adopt the request's ``rule_id``.
* ``poll``: lock changes since the last poll become Available updates (the carrier writes the
  ``file_stagein`` messages in the same transaction); stuck files are re-staged after
  ``max_waiting_time``, and fail for good when no re-stage is left.
* ``abort``: delete every rule of the processing.

State between polls lives in ``processing_metadata`` (written by the carrier in the same
transaction as the content updates, so a crash between two polls loses nothing):

* ``rules``: one entry per rule group — the main rule, then each re-stage — with its rule ids,
  its creation time on the backend clock, the source it avoids, and ``since``: the latest lock
  change already applied (each group keeps its own, as groups run on different drives).
* ``stuck``: files whose latest attempt is stuck, with the index of that group; ``stuck_count``
  feeds the throttle (a stuck file no longer occupies its source's queue).
* ``events_cursor`` (Rucio with transfer events): the last recorded event read (``carousel.rucio_events``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from requests_app.errors import PermanentError
from requests_app.models import Collection, Content, Processing, Request, Transform
from requests_app.models.statuses import (
    REQUEST_TERMINAL,
    CollectionRelationType,
    CollectionStatus,
    ContentStatus,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)
from requests_app.worktypes.base import (
    ContentSpec,
    ContentUpdate,
    Decision,
    Plan,
    PollResult,
    SubmitResult,
    WorkType,
)

from .backends import get_backend
from .backends.base import RuleRequest, StagingBackend, main_source
from .metadata import clean_stagein_metadata
from .rucio_events import landed_after, latest_event_id, needs_listing
from .throttle import offer_room, reservation_of, throttle_admit

# Files named in the collection message of a partly failed dataset; the rest are counted.
MAX_FAILED_LISTED = 2000
# Contents still waiting for their file (not Available, not finally failed).
PENDING = (ContentStatus.NEW, ContentStatus.PROCESSING, ContentStatus.FAILED, ContentStatus.LOST, ContentStatus.MAPPED)
# A poll at the instant of a landing could see it a hair early; aim just after it.
EVENT_MARGIN_SECONDS = 0.02
_EARLIEST = datetime.min.replace(tzinfo=UTC)
# Files named in the collection message of a partly failed dataset; the rest are counted.
MAX_FAILED_LISTED = 2000


def rule_comment(processing: Processing) -> str:
    """The tag that lets a repeated submit adopt the rule it created before a crash."""
    return f"idds processing {processing.pk}"


class StageInWorkType(WorkType):
    """Data carousel: stage a tape dataset and release every file the moment it is on disk."""

    request_type = RequestType.STAGE_IN
    name = "stagein"
    queue = "carousel"

    def validate(self, *, metadata: dict[str, Any], request_fields: dict[str, Any]) -> dict[str, Any]:
        return clean_stagein_metadata(metadata, request_fields)

    def dedup_key(self, request: Request) -> str | None:
        meta = request.request_metadata
        return f"stagein:{meta['scope']}:{meta['name']}:{meta['workload_id']}"

    def admit(self, request: Request) -> str | None:
        meta = request.request_metadata
        if meta.get("rule_id"):
            return None  # the rule exists already: nothing left to throttle
        if _joins_live_transform(self.dedup_key(request)):
            return None
        known = reservation_of(request.pk)
        if known is not None:
            files, source = known.files, known.source
        else:
            try:
                summary = get_backend().dataset_summary(meta["scope"], meta["name"])
            except PermanentError:
                return None  # planning will fail the transform with the backend's reason
            files, source = summary.files, summary.source
        return throttle_admit(request_id=request.pk, files=files, source=source, destination=meta["dest_rse"])

    def plan(self, transform: Transform) -> Plan:
        meta = transform.request.request_metadata
        scope, name = meta["scope"], meta["name"]
        files = get_backend().list_files(scope, name)
        if not files:
            raise PermanentError(f"dataset {scope}:{name} has no files")
        source = main_source(files)
        summary = {"files": len(files), "bytes": sum(f.bytes for f in files), "source": source}
        contents = [ContentSpec(name=f.name, scope=f.scope, bytes=f.bytes, adler32=f.adler32) for f in files]
        return Plan.input_output(
            scope=scope,
            name=name,
            outputs=contents,
            status=CollectionStatus.OPEN,
            input_metadata=summary,
            output_metadata={"destination": meta.get("dest_rse", "")},
            metadata={"source": source, "destination": meta.get("dest_rse", ""), "files": len(files)},
        )

    def submit(self, processing: Processing) -> SubmitResult:
        backend = get_backend()
        meta = processing.transform.request.request_metadata
        rule_id = meta.get("rule_id")
        # Transfer events of a new rule come after this one; an adopted rule's may be older.
        events = getattr(backend, "transfer_events", False)
        events_cursor = {"events_cursor": latest_event_id() if not rule_id else 0} if events else {}
        if rule_id:
            adopted = True
        else:
            adopted = False
            rule_id = backend.create_rule(
                RuleRequest(
                    dids=((meta["scope"], meta["name"]),),
                    rse_expression=meta["dest_rse"],
                    source_replica_expression=meta.get("src_rse"),
                    lifetime=meta.get("lifetime"),
                    comment=rule_comment(processing),
                )
            )[0]
        info = backend.get_rule(rule_id)
        created = info.created_at or backend.now()
        group = {
            "kind": "adopted" if adopted else "main",
            "rule_ids": [rule_id],
            "files": processing.transform.transform_metadata.get("files"),
            "destination": meta.get("dest_rse", ""),
            "created_at": created.isoformat(),
            "since": None,
        }
        if events:
            # Locks already OK (files there before the rule, an adopted rule) send no message.
            group["ok_at_submit"] = info.locks_ok_cnt
        return SubmitResult(
            external_id=rule_id,
            metadata={
                "rule_id": rule_id,
                "rules": [group],
                "stuck": {},
                "stuck_count": 0,
                **events_cursor,
            },
        )

    def poll(self, processing: Processing) -> PollResult:
        """Read every rule group's lock changes, then decide re-stages and final failures."""
        backend = get_backend()
        transform = processing.transform
        request_metadata = transform.request.request_metadata
        meta = processing.processing_metadata
        groups: list[dict[str, Any]] = [dict(group) for group in meta.get("rules", [])]
        stuck: dict[str, int] = dict(meta.get("stuck", {}))
        cursor = meta.get("events_cursor")
        pending_count, released = _output_counters(processing)
        if getattr(backend, "transfer_events", False):
            destination = request_metadata.get("dest_rse") or _destination(groups)
            landed, cursor = _collect_from_events(
                backend, processing, groups, stuck, destination, int(cursor or 0), released=released
            )
        else:
            landed = _collect(backend, groups, stuck)
        landed_names = list(dict.fromkeys(name for _, name in landed))
        exhausted = len(groups) - 1 >= int(request_metadata.get("max_extra_rules", 1))
        due_at = _parse(groups[-1]["created_at"]) + timedelta(seconds=float(request_metadata["max_waiting_time"]))
        restage_due = not exhausted and backend.now() >= due_at
        final_failed: list[str] = []
        note = None
        # The counters say how many files are missing; the names are needed only to finish, to fail
        # stuck files or to re-stage. The estimate never overshoots (a file announced twice only
        # lowers it), so "nothing missing" is always checked against the names.
        estimate = pending_count - len(landed_names)
        if estimate > 0 and not restage_due and not (exhausted and stuck):
            remaining_count = estimate
        else:
            remaining = set(_pending(processing).values_list("name", flat=True)) - set(landed_names)
            stuck = {name: index for name, index in stuck.items() if name in remaining}
            if exhausted:
                # No rule left to try: a file stuck in the last group has failed for good.
                last = len(groups) - 1
                final_failed = sorted(name for name, index in stuck.items() if index == last)
                remaining -= set(final_failed)
            if remaining and restage_due:
                source = transform.transform_metadata.get("source", "")
                note = _restage(backend, processing, groups, remaining, stuck, request_metadata, source)
                stuck = {name: index for name, index in stuck.items() if name not in remaining}
            remaining_count = len(remaining)
        metadata = {"rules": groups, "stuck": stuck, "stuck_count": len(stuck), "remaining_files": remaining_count}
        if cursor is not None:
            metadata["events_cursor"] = cursor
        updates = [ContentUpdate(name=name, status=ContentStatus.AVAILABLE) for name in landed_names]
        updates += [ContentUpdate(name=name, status=ContentStatus.FINAL_FAILED) for name in final_failed]
        room_freed = landed_names or len(stuck) != meta.get("stuck_count")
        return PollResult(
            updates=updates,
            status=ProcessingStatus.RUNNING if remaining_count else ProcessingStatus.FINISHED,
            metadata=metadata,
            next_poll_in=_next_poll_in(backend, groups, None if exhausted else due_at) if remaining_count else None,
            error=note,
            # Once the landings are committed the throttle counts them: offer the room at once.
            after_commit=[partial(offer_room, transform, debounce=True)] if room_freed else [],
        )

    def decide(self, transform: Transform) -> Decision:
        decision = super().decide(transform)
        if decision.finish in (RequestStatus.SUBFINISHED, RequestStatus.FAILED):
            failed = list(
                Content.objects.filter(
                    collection__transform=transform,
                    collection__relation_type=CollectionRelationType.OUTPUT,
                    status=ContentStatus.FINAL_FAILED,
                )
                .order_by("id")
                .values_list("name", flat=True)[:MAX_FAILED_LISTED]
            )
            decision.output = {"failed_files": failed}
            decision.reason = f"{decision.reason}; failed files: {', '.join(failed[:10])}".strip("; ")
        if decision.finish is not None:
            transaction.on_commit(partial(offer_room, transform))
        return decision

    def abort(self, processing: Processing) -> None:
        backend = get_backend()
        for group in processing.processing_metadata.get("rules", []):
            for rule_id in group["rule_ids"]:
                backend.delete_rule(rule_id)


def _joins_live_transform(key: str | None) -> bool:
    return bool(key) and Transform.objects.filter(dedup_key=key).exclude(status__in=REQUEST_TERMINAL).exists()


# -- one poll: where the files are, what landed, what to re-stage --------------------------------


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _destination(groups: list[dict[str, Any]]) -> str:
    return next((group.get("destination") for group in groups if group.get("destination")), "")


def _pending(processing: Processing) -> QuerySet[Content]:
    """The output files not yet Available nor finally failed."""
    return Content.objects.filter(
        collection__transform_id=processing.transform_id,
        collection__relation_type=CollectionRelationType.OUTPUT,
        status__in=PENDING,
    )


def _output_counters(processing: Processing) -> tuple[int, int]:
    """(files not yet Available nor failed, files Available) from the output collection's counters (one row)."""
    counters = Collection.objects.filter(
        transform_id=processing.transform_id, relation_type=CollectionRelationType.OUTPUT
    ).values_list("total_files", "processed_files", "failed_files")
    pending = released = 0
    for total, processed, failed in counters:
        pending += total - processed - failed
        released += processed
    return pending, released


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
    *,
    released: int,
) -> tuple[list[tuple[datetime, str]], int]:
    """The fast path (``backend.transfer_events``): files landed on ``destination`` from the recorded
    transfer events after ``cursor``; a group's locks are listed only when its rule's counters
    disagree with what is known (``rucio_events.needs_listing``; ``released``: files Available
    before this poll). Returns (landed, new cursor)."""
    names = _pending(processing).values("name")
    from_events, cursor = landed_after(names_query=names, destination=destination, after=cursor)
    landed = [(moment or _EARLIEST, name) for moment, name in from_events]
    for _, name in landed:
        stuck.pop(name, None)
    for index, group in enumerate(groups):
        if needs_listing(backend, index, group, known_ok=released + len(landed)):
            group["listings"] = group.get("listings", 0) + 1
            landed.extend(_collect_group(backend, index, group, stuck))
    landed.sort(key=lambda pair: pair[0])
    return landed, cursor


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
    destination = request_metadata.get("dest_rse") or _destination(groups)
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
