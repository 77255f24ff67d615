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
  ``max_waiting_time`` (``carousel.polling``).
* ``abort``: delete every rule of the processing.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import transaction

from requests_app import handoffs
from requests_app.errors import PermanentError
from requests_app.models import Content, Processing, Request, Transform
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
from .backends.base import RuleRequest, main_source
from .metadata import clean_stagein_metadata
from .polling import poll_stagein
from .rucio_events import latest_event_id
from .throttle import reservation_of, throttle_admit, throttled_request_ids

logger = logging.getLogger(__name__)
# Offers of freed room to waiting requests, debounced per source in each process (Django's cache).
WAKE_KEY = "carousel:wake-throttled"
WAKE_SECONDS = 1.0
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
        transform = processing.transform
        meta = transform.request.request_metadata
        outcome = poll_stagein(
            backend=get_backend(),
            processing=processing,
            request_metadata=meta,
            source=transform.transform_metadata.get("source", ""),
        )
        updates = [ContentUpdate(name=name, status=ContentStatus.AVAILABLE) for name in outcome.landed]
        updates += [ContentUpdate(name=name, status=ContentStatus.FINAL_FAILED) for name in outcome.final_failed]
        room_freed = outcome.landed or outcome.metadata.get("stuck_count") != processing.processing_metadata.get(
            "stuck_count"
        )
        return PollResult(
            updates=updates,
            status=ProcessingStatus.FINISHED if outcome.remaining == 0 else ProcessingStatus.RUNNING,
            metadata=outcome.metadata,
            next_poll_in=outcome.next_poll_in,
            error=outcome.note,
            # Once the landings are committed the throttle counts them: offer the room at once.
            after_commit=[partial(_offer_room, transform, debounce=True)] if room_freed else [],
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
            transaction.on_commit(partial(_offer_room, transform))
        return decision

    def abort(self, processing: Processing) -> None:
        backend = get_backend()
        for group in processing.processing_metadata.get("rules", []):
            for rule_id in group["rule_ids"]:
                backend.delete_rule(rule_id)


def _joins_live_transform(key: str | None) -> bool:
    return bool(key) and Transform.objects.filter(dedup_key=key).exclude(status__in=REQUEST_TERMINAL).exists()


def _offer_room(transform: Transform, *, debounce: bool = False) -> None:
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
