"""Status sets with the iDDS integer values (IDDS_REFERENCE.md §1) and their allowed transitions.

Integers are what the iDDS wire protocol carries, so they are what the database stores; the
labels are the names consumers match on. Each set's transition table sits right below it and is
the only authority on legal moves: ``requests_app.services.transitions`` enforces it.
"""

from __future__ import annotations

from django.db import models


class RequestType(models.IntegerChoices):
    WORKFLOW = 0, "Workflow"
    EVENT_STREAMING = 1, "EventStreaming"
    STAGE_IN = 2, "StageIn"
    ACTIVE_LEARNING = 3, "ActiveLearning"
    HYPER_PARAMETER_OPT = 4, "HyperParameterOpt"
    DERIVATION = 5, "Derivation"
    OTHER = 99, "Other"


class RequestStatus(models.IntegerChoices):
    """Shared by Request and Transform, as in iDDS."""

    NEW = 0, "New"
    READY = 1, "Ready"
    TRANSFORMING = 2, "Transforming"
    FINISHED = 3, "Finished"
    SUBFINISHED = 4, "SubFinished"
    FAILED = 5, "Failed"
    EXTEND = 6, "Extend"
    TO_CANCEL = 7, "ToCancel"
    CANCELLING = 8, "Cancelling"
    CANCELLED = 9, "Cancelled"
    TO_SUSPEND = 10, "ToSuspend"
    SUSPENDING = 11, "Suspending"
    SUSPENDED = 12, "Suspended"
    TO_RESUME = 13, "ToResume"
    RESUMING = 14, "Resuming"
    TO_EXPIRE = 15, "ToExpire"
    EXPIRING = 16, "Expiring"
    EXPIRED = 17, "Expired"
    TO_FINISH = 18, "ToFinish"
    TO_FORCE_FINISH = 19, "ToForceFinish"
    TERMINATING = 20, "Terminating"
    BUILDING = 21, "Building"
    BUILT = 22, "Built"
    THROTTLING = 23, "Throttling"
    TO_CLOSE = 24, "ToClose"


RS = RequestStatus
REQUEST_TERMINAL = frozenset({RS.FINISHED, RS.SUBFINISHED, RS.FAILED, RS.CANCELLED, RS.EXPIRED})
# Statuses in which agents keep working on the request.
REQUEST_ACTIVE = frozenset({RS.NEW, RS.READY, RS.TRANSFORMING, RS.THROTTLING, RS.TO_RESUME, RS.RESUMING})
# Statuses the watchdog looks after (an agent should be working on them): active, or stopping.
REQUEST_WATCHED = REQUEST_ACTIVE | {RS.TO_CANCEL, RS.CANCELLING, RS.TO_FINISH, RS.TO_FORCE_FINISH, RS.TERMINATING}
# Expired is there for transforms: an expiring request ends its transforms as Expired directly.
_CONTROL = {RS.TO_CANCEL, RS.CANCELLED, RS.TO_SUSPEND, RS.SUSPENDED, RS.TO_FINISH, RS.FAILED, RS.TO_EXPIRE, RS.EXPIRED}
REQUEST_TRANSITIONS: dict[int, frozenset[int]] = {
    RS.NEW: frozenset({RS.READY, RS.TRANSFORMING, RS.THROTTLING, *_CONTROL}),
    RS.READY: frozenset({RS.TRANSFORMING, RS.THROTTLING, *_CONTROL}),
    RS.THROTTLING: frozenset({RS.NEW, RS.TRANSFORMING, *_CONTROL}),
    RS.TRANSFORMING: frozenset(
        {RS.FINISHED, RS.SUBFINISHED, RS.THROTTLING, RS.TO_FORCE_FINISH, RS.TERMINATING, *_CONTROL}
    ),
    RS.TO_CANCEL: frozenset({RS.CANCELLING, RS.CANCELLED}),
    RS.CANCELLING: frozenset({RS.CANCELLED}),
    # A paused request still has a lifetime: it expires like a running one.
    RS.TO_SUSPEND: frozenset({RS.SUSPENDING, RS.SUSPENDED, RS.TO_CANCEL, RS.CANCELLED, RS.TO_EXPIRE}),
    RS.SUSPENDING: frozenset({RS.SUSPENDED}),
    RS.SUSPENDED: frozenset(
        {RS.TO_RESUME, RS.RESUMING, RS.TRANSFORMING, RS.NEW, RS.TO_CANCEL, RS.CANCELLED, RS.TO_EXPIRE, RS.EXPIRED}
    ),
    RS.TO_RESUME: frozenset({RS.RESUMING, RS.TRANSFORMING, RS.NEW, RS.TO_CANCEL, RS.CANCELLED, RS.TO_EXPIRE}),
    RS.RESUMING: frozenset({RS.TRANSFORMING, RS.NEW, RS.TO_CANCEL, RS.CANCELLED, RS.TO_EXPIRE}),
    RS.TO_FINISH: frozenset({RS.FINISHED, RS.SUBFINISHED, RS.FAILED, RS.TO_CANCEL, RS.CANCELLED}),
    RS.TO_FORCE_FINISH: frozenset({RS.FINISHED, RS.SUBFINISHED, RS.FAILED}),
    RS.TERMINATING: frozenset({RS.FINISHED, RS.SUBFINISHED, RS.FAILED, RS.CANCELLED}),
    # Finished: every transform ended well before the expiry's control got to them.
    RS.TO_EXPIRE: frozenset({RS.EXPIRING, RS.EXPIRED, RS.FINISHED}),
    RS.EXPIRING: frozenset({RS.EXPIRED, RS.FINISHED}),
    # Retry gives a partly failed request another go; Finished and Cancelled are final.
    RS.SUBFINISHED: frozenset({RS.TO_RESUME, RS.TRANSFORMING}),
    RS.FAILED: frozenset({RS.TO_RESUME, RS.TRANSFORMING}),
    RS.FINISHED: frozenset(),
    RS.CANCELLED: frozenset(),
    RS.EXPIRED: frozenset(),
}
for _status in RequestStatus:
    REQUEST_TRANSITIONS.setdefault(_status, frozenset({RS.TO_CANCEL, RS.CANCELLED, RS.FAILED}))
# Statuses of a request being stopped -> the status it ends in (request_control does the work).
REQUEST_STOP_END: dict[int, int] = {
    RS.TO_CANCEL: RS.CANCELLED,
    RS.CANCELLING: RS.CANCELLED,
    RS.TO_EXPIRE: RS.EXPIRED,
    RS.EXPIRING: RS.EXPIRED,
}
# Statuses from which a request past its lifetime is expired (the table decides; terminal and
# already stopping requests are left alone).
REQUEST_EXPIRABLE = frozenset(status for status, targets in REQUEST_TRANSITIONS.items() if RS.TO_EXPIRE in targets)


class ProcessingStatus(models.IntegerChoices):
    NEW = 0, "New"
    SUBMITTING = 1, "Submitting"
    SUBMITTED = 2, "Submitted"
    RUNNING = 3, "Running"
    FINISHED = 4, "Finished"
    FAILED = 5, "Failed"
    LOST = 6, "Lost"
    CANCEL = 7, "Cancel"
    FINISHED_ON_STEP = 8, "FinishedOnStep"
    FINISHED_ON_EXEC = 9, "FinishedOnExec"
    TIMEOUT = 10, "TimeOut"
    FINISHED_TERM = 11, "FinishedTerm"


PS = ProcessingStatus
PROCESSING_TERMINAL = frozenset(
    {PS.FINISHED, PS.FAILED, PS.LOST, PS.CANCEL, PS.FINISHED_ON_STEP, PS.FINISHED_ON_EXEC, PS.TIMEOUT, PS.FINISHED_TERM}
)
# The carrier submits these (Submitting: the submitter died mid-way and its claim expired).
PROCESSING_SUBMITTABLE = frozenset({PS.NEW, PS.SUBMITTING})
PROCESSING_POLLABLE = frozenset({PS.SUBMITTED, PS.RUNNING})
_PS_END = {PS.FINISHED, PS.FAILED, PS.LOST, PS.CANCEL, PS.TIMEOUT, PS.FINISHED_TERM}
PROCESSING_TRANSITIONS: dict[int, frozenset[int]] = {
    PS.NEW: frozenset({PS.SUBMITTING, PS.CANCEL, PS.FAILED}),
    # Submitting -> New: a claim that expired mid-submit hands the processing back.
    PS.SUBMITTING: frozenset({PS.SUBMITTED, PS.RUNNING, PS.NEW, *_PS_END}),
    PS.SUBMITTED: frozenset({PS.RUNNING, *_PS_END}),
    PS.RUNNING: frozenset({PS.FINISHED_ON_STEP, PS.FINISHED_ON_EXEC, *_PS_END}),
    # Retry of a failed or lost processing starts it again.
    PS.FAILED: frozenset({PS.NEW}),
    PS.LOST: frozenset({PS.NEW}),
    PS.TIMEOUT: frozenset({PS.NEW}),
}
for _status in ProcessingStatus:
    PROCESSING_TRANSITIONS.setdefault(_status, frozenset())


class CollectionType(models.IntegerChoices):
    CONTAINER = 0, "Container"
    DATASET = 1, "Dataset"
    FILE = 2, "File"
    PSEUDO_DATASET = 3, "PseudoDataset"


class CollectionRelationType(models.IntegerChoices):
    INPUT = 0, "Input"
    OUTPUT = 1, "Output"
    LOG = 2, "Log"


class CollectionStatus(models.IntegerChoices):
    NEW = 0, "New"
    UPDATED = 1, "Updated"
    PROCESSING = 2, "Processing"
    OPEN = 3, "Open"
    CLOSED = 4, "Closed"
    SUBCLOSED = 5, "SubClosed"
    FAILED = 6, "Failed"
    DELETED = 7, "Deleted"
    CANCELLED = 8, "Cancelled"
    SUSPENDED = 9, "Suspended"


CS = CollectionStatus
COLLECTION_TERMINAL = frozenset({CS.CLOSED, CS.SUBCLOSED, CS.FAILED, CS.DELETED, CS.CANCELLED})
_CS_LIVE = {CS.NEW, CS.UPDATED, CS.PROCESSING, CS.OPEN, CS.SUSPENDED}
COLLECTION_TRANSITIONS: dict[int, frozenset[int]] = {
    status: frozenset((_CS_LIVE | COLLECTION_TERMINAL) - {status}) for status in _CS_LIVE
}
COLLECTION_TRANSITIONS |= {
    # Retry reopens a partly closed collection; a closed one is final.
    CS.SUBCLOSED: frozenset({CS.OPEN, CS.PROCESSING, CS.CLOSED}),
    CS.FAILED: frozenset({CS.OPEN, CS.PROCESSING}),
    CS.CLOSED: frozenset({CS.DELETED}),
    CS.CANCELLED: frozenset({CS.DELETED}),
    CS.DELETED: frozenset(),
}


class ContentType(models.IntegerChoices):
    FILE = 0, "File"
    EVENT = 1, "Event"
    PSEUDO_CONTENT = 2, "PseudoContent"


class ContentStatus(models.IntegerChoices):
    NEW = 0, "New"
    PROCESSING = 1, "Processing"
    AVAILABLE = 2, "Available"
    FAILED = 3, "Failed"
    FINAL_FAILED = 4, "FinalFailed"
    LOST = 5, "Lost"
    DELETED = 6, "Deleted"
    MAPPED = 7, "Mapped"


CTS = ContentStatus
CONTENT_TERMINAL = frozenset({CTS.AVAILABLE, CTS.FINAL_FAILED, CTS.DELETED})
CONTENT_TRANSITIONS: dict[int, frozenset[int]] = {
    CTS.NEW: frozenset(
        {CTS.PROCESSING, CTS.AVAILABLE, CTS.FAILED, CTS.FINAL_FAILED, CTS.LOST, CTS.DELETED, CTS.MAPPED}
    ),
    CTS.MAPPED: frozenset({CTS.NEW, CTS.PROCESSING, CTS.AVAILABLE, CTS.FAILED, CTS.FINAL_FAILED, CTS.DELETED}),
    CTS.PROCESSING: frozenset({CTS.NEW, CTS.AVAILABLE, CTS.FAILED, CTS.FINAL_FAILED, CTS.LOST, CTS.DELETED}),
    # A failed file can be retried (New/Processing) or still arrive late (Available).
    CTS.FAILED: frozenset({CTS.NEW, CTS.PROCESSING, CTS.AVAILABLE, CTS.FINAL_FAILED, CTS.DELETED}),
    CTS.LOST: frozenset({CTS.NEW, CTS.PROCESSING, CTS.AVAILABLE, CTS.FINAL_FAILED, CTS.DELETED}),
    CTS.FINAL_FAILED: frozenset({CTS.NEW, CTS.DELETED}),
    CTS.AVAILABLE: frozenset({CTS.LOST, CTS.DELETED}),
    CTS.DELETED: frozenset(),
}


class MessageStatus(models.IntegerChoices):
    NEW = 0, "New"
    FETCHED = 1, "Fetched"
    DELIVERED = 2, "Delivered"
    FAILED = 3, "Failed"


MS = MessageStatus
# The conductor's work: messages not yet confirmed by every sink.
MESSAGE_UNDELIVERED = frozenset({MS.NEW, MS.FETCHED})
MESSAGE_TRANSITIONS: dict[int, frozenset[int]] = {
    MS.NEW: frozenset({MS.FETCHED, MS.DELIVERED, MS.FAILED}),
    MS.FETCHED: frozenset({MS.NEW, MS.DELIVERED, MS.FAILED}),
    # An operator re-queues a failed message; a delivered one may be re-sent on request.
    MS.FAILED: frozenset({MS.NEW}),
    MS.DELIVERED: frozenset({MS.NEW}),
}

# Colours for status badges in admin and monitor pages (kept next to the choices, STYLE M2).
STATUS_COLOURS = {
    "New": "#6c757d",
    "Ready": "#0d6efd",
    "Transforming": "#0d6efd",
    "Submitting": "#0d6efd",
    "Submitted": "#0d6efd",
    "Running": "#0d6efd",
    "Open": "#0d6efd",
    "Processing": "#0d6efd",
    "Available": "#198754",
    "Finished": "#198754",
    "Closed": "#198754",
    "Delivered": "#198754",
    "SubFinished": "#fd7e14",
    "SubClosed": "#fd7e14",
    "Failed": "#dc3545",
    "FinalFailed": "#dc3545",
    "Lost": "#dc3545",
    "Cancelled": "#343a40",
    "Suspended": "#ffc107",
    "Throttling": "#ffc107",
}
