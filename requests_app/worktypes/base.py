"""The work-type interface that the agents call without knowing the type (docs/architecture.md, "Adding a work type").

Life of a request, and which hook each agent calls::

    REST/command  -> validate(...)                 clean metadata or raise WorkTypeValidationError
    clerk         -> admit(request)                start now, or wait in Throttling
                     dedup_key(request)            join a live transform with the same key, or
                     transform_specs(request)      create the transform(s)
    transformer   -> plan(transform)               collections, contents, first processing(s)
    carrier       -> submit(processing)            start the outside work (idempotent!)
                     poll(processing)              content changes, new contents, status
    roll-up       -> decide(transform)             start another processing, wait, or finish
    abort         -> abort(processing)             cancel the outside work (idempotent)

Rules for implementations:

* ``plan``, ``submit``, ``poll`` and ``abort`` may do slow I/O; they must not write the core tables
  (the agents apply what they return in one short transaction). They may read anything.
* ``submit`` can run twice for one processing (a worker died after the outside call and before the
  commit; the claim expired and another worker retried). Make it idempotent, e.g. by tagging the
  outside object with ``processing.pk`` and adopting an existing one.
* Raise ``TransientError`` for failures worth retrying (the agent backs off and counts retries on
  the row) and ``PermanentError`` to fail the processing with a reason.
* Content updates name contents by ``name`` within the transform's collection of ``relation``.
* A work type that changes state outside these hooks (HPO losses arriving over REST) uses the
  services in ``requests_app.services`` and then ``requests_app.handoffs.transform_changed``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from requests_app.models.statuses import (
    PROCESSING_TERMINAL,
    CollectionRelationType,
    CollectionStatus,
    CollectionType,
    ContentStatus,
    ContentType,
    ProcessingStatus,
    RequestStatus,
)

if TYPE_CHECKING:
    from requests_app.models import Processing, Request, Transform


@dataclass(slots=True)  # one per file: slots make them cheaper to build
class ContentSpec:
    """A content to create (a file of a dataset, an HPO point)."""

    name: str
    scope: str = ""
    bytes: int = 0
    adler32: str = ""
    path: str | None = None
    status: int = ContentStatus.NEW
    content_type: int = ContentType.FILE
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectionSpec:
    relation: int
    scope: str
    name: str
    coll_type: int = CollectionType.DATASET
    status: int = CollectionStatus.NEW
    contents: list[ContentSpec] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProcessingSpec:
    """A processing to create; ``metadata`` seeds ``processing_metadata``."""

    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TransformSpec:
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    collections: list[CollectionSpec]
    processings: list[ProcessingSpec] = field(default_factory=lambda: [ProcessingSpec()])
    # Merged into transform_metadata.
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def input_output(
        cls,
        *,
        scope: str,
        name: str,
        outputs: list[ContentSpec],
        input_type: int = CollectionType.DATASET,
        status: int = CollectionStatus.NEW,
        input_metadata: dict[str, Any] | None = None,
        output_metadata: dict[str, Any] | None = None,
        processings: list[ProcessingSpec] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Plan:
        """The usual plan: an input collection ``scope:name`` and an output collection of the same name
        holding ``outputs`` (staged files, HPO points), with the first processing(s)."""
        return cls(
            collections=[
                CollectionSpec(
                    relation=CollectionRelationType.INPUT,
                    scope=scope,
                    name=name,
                    coll_type=input_type,
                    status=status,
                    metadata=input_metadata or {},
                ),
                CollectionSpec(
                    relation=CollectionRelationType.OUTPUT,
                    scope=scope,
                    name=name,
                    status=status,
                    contents=outputs,
                    metadata=output_metadata or {},
                ),
            ],
            processings=processings if processings is not None else [ProcessingSpec()],
            metadata=metadata or {},
        )


@dataclass
class SubmitResult:
    external_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # Seconds until the first poll is worth doing (0 = at once).
    first_poll_in: float = 0.0
    status: int | None = None  # default Submitted
    # Hand-offs that must see the submit committed (HPO: start the generator run).
    after_commit: list[Callable[[], None]] = field(default_factory=list)


@dataclass(slots=True)  # one per file: slots make them cheaper to build
class ContentUpdate:
    name: str
    status: int
    relation: int = CollectionRelationType.OUTPUT
    path: str | None = None
    details: dict[str, Any] | None = None


@dataclass
class PollResult:
    updates: list[ContentUpdate] = field(default_factory=list)
    new_contents: list[ContentSpec] = field(default_factory=list)
    new_contents_relation: int = CollectionRelationType.OUTPUT
    # New processing status (None = unchanged); a terminal one triggers the roll-up.
    status: int | None = None
    metadata: dict[str, Any] | None = None
    # A hint from the work type (e.g. the simulator knows the next landing); None = back off.
    next_poll_in: float | None = None
    error: str | None = None
    # Hand-offs that must see this poll's changes (e.g. offering freed room to waiting requests):
    # the carrier runs them once its transaction committed.
    after_commit: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class Decision:
    """What the roll-up does with a transform whose processings all ended (or on request)."""

    # Create these processings and carry on.
    new_processings: list[ProcessingSpec] = field(default_factory=list)
    # Finish the transform with this status (Finished, SubFinished, Failed) ...
    finish: int | None = None
    # ... announcing this output in the collection message (HPO: last generator output).
    output: Any = None
    reason: str = ""

    @classmethod
    def wait(cls) -> Decision:
        return cls()

    @classmethod
    def done(cls, status: int = RequestStatus.FINISHED, *, output: Any = None, reason: str = "") -> Decision:
        return cls(finish=status, output=output, reason=reason)


class WorkType(ABC):
    """One kind of work (stage-in, HPO, active learning, the test type)."""

    #: iDDS request_type value this work type serves.
    request_type: ClassVar[int]
    #: Suffix of the message types: file_<name>, collection_<name>.
    name: ClassVar[str]
    #: Queue of this type's submit and poll tasks, to scale it on its own workers.
    queue: ClassVar[str] = "carrier"
    #: Announce contents as they are created (HPO points) with status New.
    announce_new_contents: ClassVar[bool] = False
    #: Content statuses announced in file messages when a content reaches them.
    announced_statuses: ClassVar[frozenset[int]] = frozenset({ContentStatus.AVAILABLE})
    #: Some content moves of this type skip the collection counters (HPO reports, whose single counter row
    #: would queue every report of a study on its lock): the roll-up recounts the output collections from
    #: their contents before ``decide`` (``contents_recount``), so counters trail those moves by at most
    #: the time to the next roll-up.
    recounts_outputs: ClassVar[bool] = False

    @abstractmethod
    def validate(self, *, metadata: dict[str, Any], request_fields: dict[str, Any]) -> dict[str, Any]:
        """Return the cleaned metadata or raise WorkTypeValidationError naming each bad field."""

    def admit(self, request: Request) -> str | None:
        """Return a reason to hold the request back (throttling), or None to start it now.

        A held request goes to Throttling and the watchdog offers it again at every sweep."""
        return None

    def dedup_key(self, request: Request) -> str | None:
        """A key under which a second request joins the live transform instead of doubling it."""
        return None

    def transform_specs(self, request: Request) -> list[TransformSpec]:
        return [TransformSpec(metadata={})]

    @abstractmethod
    def plan(self, transform: Transform) -> Plan: ...

    @abstractmethod
    def submit(self, processing: Processing) -> SubmitResult: ...

    @abstractmethod
    def poll(self, processing: Processing) -> PollResult: ...

    def decide(self, transform: Transform) -> Decision:
        """Default: finish when every processing ended; SubFinished if some output failed."""
        return default_decision(transform)

    def abort(self, processing: Processing) -> None:  # noqa: B027 - optional hook
        """Cancel the outside work; default: nothing to cancel."""


def default_decision(transform: Transform) -> Decision:
    """Finish once every processing ended: Finished when all output is there, SubFinished when
    part of it is, Failed when none is."""
    processings = list(transform.processings.values_list("status", flat=True))
    if any(status not in PROCESSING_TERMINAL for status in processings):
        return Decision.wait()
    outputs = list(transform.collections.filter(relation_type=CollectionRelationType.OUTPUT))
    total = sum(c.total_files for c in outputs)
    processed = sum(c.processed_files for c in outputs)
    if total and processed == total:
        return Decision.done(RequestStatus.FINISHED)
    if processed:
        return Decision.done(RequestStatus.SUBFINISHED, reason=f"{total - processed} of {total} outputs missing")
    if not total and processings and all(s == ProcessingStatus.FINISHED for s in processings):
        return Decision.done(RequestStatus.FINISHED)
    return Decision.done(RequestStatus.FAILED, reason="no output produced")
