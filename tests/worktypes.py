"""A work type used only by the tests and the pipeline benchmark: it proves the agents end to end.

"Countdown" plans ``files`` output files and releases ``files_per_poll`` of them per poll, in
name order, so a request visits every agent (clerk, transformer, carrier submit and poll,
roll-up, conductor) with deterministic outcomes. ``fail_files`` end FinalFailed; ``transient_polls``
makes the first polls raise TransientError, ``transient_plans`` the first plans;
``permanent_submit`` refuses the submit and ``refuse_plan`` the plan.
"""

from __future__ import annotations

from typing import Any

from requests_app.errors import PermanentError, TransientError, WorkTypeValidationError
from requests_app.models import Content, Processing, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus, ProcessingStatus, RequestType
from requests_app.worktypes.base import (
    ContentSpec,
    ContentUpdate,
    Plan,
    PollResult,
    SubmitResult,
    WorkType,
)

INT_FIELDS = {
    "files": (0, 1_000_000),
    "files_per_poll": (1, 1_000_000),
    "transient_polls": (0, 100),
    "transient_plans": (0, 100),
}


class CountdownWorkType(WorkType):
    request_type = RequestType.OTHER
    name = "countdown"
    queue = "carrier"

    def validate(self, *, metadata: dict[str, Any], request_fields: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        for field, (low, high) in INT_FIELDS.items():
            value = metadata.get(field, low if field != "files_per_poll" else 10)
            if isinstance(value, bool) or not isinstance(value, int):
                errors[f"request_metadata.{field}"] = f"must be an integer, got {type(value).__name__}"
            elif not low <= value <= high:
                errors[f"request_metadata.{field}"] = f"must be between {low} and {high}, got {value}"
            else:
                cleaned[field] = value
        fail_files = metadata.get("fail_files", [])
        if not isinstance(fail_files, list) or not all(isinstance(i, int) for i in fail_files):
            errors["request_metadata.fail_files"] = "must be a list of file indexes (integers)"
        cleaned["fail_files"] = fail_files
        cleaned["permanent_submit"] = bool(metadata.get("permanent_submit", False))
        cleaned["refuse_plan"] = bool(metadata.get("refuse_plan", False))
        if "workload_id" in metadata:
            cleaned["workload_id"] = metadata["workload_id"]
        if errors:
            raise WorkTypeValidationError(errors)
        return cleaned

    def dedup_key(self, request) -> str | None:
        key = request.request_metadata.get("dedup")
        return f"countdown:{key}" if key else None

    def plan(self, transform: Transform) -> Plan:
        meta = transform.request.request_metadata
        if meta.get("refuse_plan"):
            raise PermanentError("the test work type was told to refuse the plan")
        if transform.retries < meta.get("transient_plans", 0):
            raise TransientError(f"simulated listing outage {transform.retries + 1}")
        scope, name = "test", f"countdown.{transform.request_id}"
        contents = [ContentSpec(name=f"file.{i:07d}", bytes=1000 + i) for i in range(meta["files"])]
        return Plan.input_output(scope=scope, name=name, outputs=contents)

    def submit(self, processing: Processing) -> SubmitResult:
        if processing.transform.request.request_metadata.get("permanent_submit"):
            raise PermanentError("the test work type was told to refuse the submit")
        return SubmitResult(external_id=f"countdown-{processing.pk}", metadata={"polls": 0})

    def poll(self, processing: Processing) -> PollResult:
        meta = processing.transform.request.request_metadata
        polls = processing.processing_metadata.get("polls", 0) + 1
        # ``retries`` counts consecutive failed polls (the carrier resets it after a good one).
        if processing.retries < meta.get("transient_polls", 0) and polls == 1:
            raise TransientError(f"simulated outage {processing.retries + 1}")
        pending = list(
            Content.objects.filter(
                collection__transform=processing.transform,
                collection__relation_type=CollectionRelationType.OUTPUT,
                status=ContentStatus.NEW,
            )
            .order_by("name")
            .values_list("name", flat=True)[: meta["files_per_poll"]]
        )
        failing = {f"file.{i:07d}" for i in meta.get("fail_files", [])}
        updates = [
            ContentUpdate(name=n, status=ContentStatus.FINAL_FAILED if n in failing else ContentStatus.AVAILABLE)
            for n in pending
        ]
        remaining = Content.objects.filter(
            collection__transform=processing.transform,
            collection__relation_type=CollectionRelationType.OUTPUT,
            status=ContentStatus.NEW,
        ).count() - len(pending)
        status = ProcessingStatus.FINISHED if remaining <= 0 else ProcessingStatus.RUNNING
        return PollResult(updates=updates, status=status, metadata={"polls": polls}, next_poll_in=0.0)
