"""Status sets with the iDDS integer values (docs/idds-reference.md §1) and their allowed transitions.

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


REQUEST_TERMINAL = frozenset(
    {
        RequestStatus.FINISHED,
        RequestStatus.SUBFINISHED,
        RequestStatus.FAILED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
    }
)
# Statuses in which agents keep working on the request.
REQUEST_ACTIVE = frozenset(
    {
        RequestStatus.NEW,
        RequestStatus.READY,
        RequestStatus.TRANSFORMING,
        RequestStatus.THROTTLING,
        RequestStatus.TO_RESUME,
        RequestStatus.RESUMING,
    }
)
# Statuses the watchdog looks after (an agent should be working on them): active, or stopping.
REQUEST_WATCHED = REQUEST_ACTIVE | {
    RequestStatus.TO_CANCEL,
    RequestStatus.CANCELLING,
    RequestStatus.TO_FINISH,
    RequestStatus.TO_FORCE_FINISH,
    RequestStatus.TERMINATING,
}
# Expired is there for transforms: an expiring request ends its transforms as Expired directly.
_CONTROL = {
    RequestStatus.TO_CANCEL,
    RequestStatus.CANCELLED,
    RequestStatus.TO_SUSPEND,
    RequestStatus.SUSPENDED,
    RequestStatus.TO_FINISH,
    RequestStatus.FAILED,
    RequestStatus.TO_EXPIRE,
    RequestStatus.EXPIRED,
}
REQUEST_TRANSITIONS: dict[int, frozenset[int]] = {
    RequestStatus.NEW: frozenset(
        {RequestStatus.READY, RequestStatus.TRANSFORMING, RequestStatus.THROTTLING, *_CONTROL}
    ),
    RequestStatus.READY: frozenset({RequestStatus.TRANSFORMING, RequestStatus.THROTTLING, *_CONTROL}),
    RequestStatus.THROTTLING: frozenset({RequestStatus.NEW, RequestStatus.TRANSFORMING, *_CONTROL}),
    RequestStatus.TRANSFORMING: frozenset(
        {
            RequestStatus.FINISHED,
            RequestStatus.SUBFINISHED,
            RequestStatus.THROTTLING,
            RequestStatus.TO_FORCE_FINISH,
            RequestStatus.TERMINATING,
            *_CONTROL,
        }
    ),
    RequestStatus.TO_CANCEL: frozenset({RequestStatus.CANCELLING, RequestStatus.CANCELLED}),
    RequestStatus.CANCELLING: frozenset({RequestStatus.CANCELLED}),
    # A paused request still has a lifetime: it expires like a running one.
    RequestStatus.TO_SUSPEND: frozenset(
        {
            RequestStatus.SUSPENDING,
            RequestStatus.SUSPENDED,
            RequestStatus.TO_CANCEL,
            RequestStatus.CANCELLED,
            RequestStatus.TO_EXPIRE,
        }
    ),
    RequestStatus.SUSPENDING: frozenset({RequestStatus.SUSPENDED}),
    RequestStatus.SUSPENDED: frozenset(
        {
            RequestStatus.TO_RESUME,
            RequestStatus.RESUMING,
            RequestStatus.TRANSFORMING,
            RequestStatus.NEW,
            RequestStatus.TO_CANCEL,
            RequestStatus.CANCELLED,
            RequestStatus.TO_EXPIRE,
            RequestStatus.EXPIRED,
        }
    ),
    RequestStatus.TO_RESUME: frozenset(
        {
            RequestStatus.RESUMING,
            RequestStatus.TRANSFORMING,
            RequestStatus.NEW,
            RequestStatus.TO_CANCEL,
            RequestStatus.CANCELLED,
            RequestStatus.TO_EXPIRE,
        }
    ),
    RequestStatus.RESUMING: frozenset(
        {
            RequestStatus.TRANSFORMING,
            RequestStatus.NEW,
            RequestStatus.TO_CANCEL,
            RequestStatus.CANCELLED,
            RequestStatus.TO_EXPIRE,
        }
    ),
    RequestStatus.TO_FINISH: frozenset(
        {
            RequestStatus.FINISHED,
            RequestStatus.SUBFINISHED,
            RequestStatus.FAILED,
            RequestStatus.TO_CANCEL,
            RequestStatus.CANCELLED,
        }
    ),
    RequestStatus.TO_FORCE_FINISH: frozenset({RequestStatus.FINISHED, RequestStatus.SUBFINISHED, RequestStatus.FAILED}),
    RequestStatus.TERMINATING: frozenset(
        {RequestStatus.FINISHED, RequestStatus.SUBFINISHED, RequestStatus.FAILED, RequestStatus.CANCELLED}
    ),
    # Finished: every transform ended well before the expiry's control got to them.
    RequestStatus.TO_EXPIRE: frozenset({RequestStatus.EXPIRING, RequestStatus.EXPIRED, RequestStatus.FINISHED}),
    RequestStatus.EXPIRING: frozenset({RequestStatus.EXPIRED, RequestStatus.FINISHED}),
    # Retry gives a partly failed request another go; Finished and Cancelled are final.
    RequestStatus.SUBFINISHED: frozenset({RequestStatus.TO_RESUME, RequestStatus.TRANSFORMING}),
    RequestStatus.FAILED: frozenset({RequestStatus.TO_RESUME, RequestStatus.TRANSFORMING}),
    RequestStatus.FINISHED: frozenset(),
    RequestStatus.CANCELLED: frozenset(),
    RequestStatus.EXPIRED: frozenset(),
}
for _status in RequestStatus:
    REQUEST_TRANSITIONS.setdefault(
        _status, frozenset({RequestStatus.TO_CANCEL, RequestStatus.CANCELLED, RequestStatus.FAILED})
    )
# Statuses of a request being stopped -> the status it ends in (request_control does the work).
REQUEST_STOP_END: dict[int, int] = {
    RequestStatus.TO_CANCEL: RequestStatus.CANCELLED,
    RequestStatus.CANCELLING: RequestStatus.CANCELLED,
    RequestStatus.TO_EXPIRE: RequestStatus.EXPIRED,
    RequestStatus.EXPIRING: RequestStatus.EXPIRED,
}
# Statuses from which a request past its lifetime is expired (the table decides; terminal and
# already stopping requests are left alone).
REQUEST_EXPIRABLE = frozenset(
    status for status, targets in REQUEST_TRANSITIONS.items() if RequestStatus.TO_EXPIRE in targets
)


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


PROCESSING_TERMINAL = frozenset(
    {
        ProcessingStatus.FINISHED,
        ProcessingStatus.FAILED,
        ProcessingStatus.LOST,
        ProcessingStatus.CANCEL,
        ProcessingStatus.FINISHED_ON_STEP,
        ProcessingStatus.FINISHED_ON_EXEC,
        ProcessingStatus.TIMEOUT,
        ProcessingStatus.FINISHED_TERM,
    }
)
# The carrier submits these (Submitting: the submitter died mid-way and its claim expired).
PROCESSING_SUBMITTABLE = frozenset({ProcessingStatus.NEW, ProcessingStatus.SUBMITTING})
PROCESSING_POLLABLE = frozenset({ProcessingStatus.SUBMITTED, ProcessingStatus.RUNNING})
_PS_END = {
    ProcessingStatus.FINISHED,
    ProcessingStatus.FAILED,
    ProcessingStatus.LOST,
    ProcessingStatus.CANCEL,
    ProcessingStatus.TIMEOUT,
    ProcessingStatus.FINISHED_TERM,
}
PROCESSING_TRANSITIONS: dict[int, frozenset[int]] = {
    ProcessingStatus.NEW: frozenset({ProcessingStatus.SUBMITTING, ProcessingStatus.CANCEL, ProcessingStatus.FAILED}),
    # Submitting -> New: a claim that expired mid-submit hands the processing back.
    ProcessingStatus.SUBMITTING: frozenset(
        {ProcessingStatus.SUBMITTED, ProcessingStatus.RUNNING, ProcessingStatus.NEW, *_PS_END}
    ),
    ProcessingStatus.SUBMITTED: frozenset({ProcessingStatus.RUNNING, *_PS_END}),
    ProcessingStatus.RUNNING: frozenset(
        {ProcessingStatus.FINISHED_ON_STEP, ProcessingStatus.FINISHED_ON_EXEC, *_PS_END}
    ),
    # Retry of a failed or lost processing starts it again.
    ProcessingStatus.FAILED: frozenset({ProcessingStatus.NEW}),
    ProcessingStatus.LOST: frozenset({ProcessingStatus.NEW}),
    ProcessingStatus.TIMEOUT: frozenset({ProcessingStatus.NEW}),
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


COLLECTION_TERMINAL = frozenset(
    {
        CollectionStatus.CLOSED,
        CollectionStatus.SUBCLOSED,
        CollectionStatus.FAILED,
        CollectionStatus.DELETED,
        CollectionStatus.CANCELLED,
    }
)
_CS_LIVE = {
    CollectionStatus.NEW,
    CollectionStatus.UPDATED,
    CollectionStatus.PROCESSING,
    CollectionStatus.OPEN,
    CollectionStatus.SUSPENDED,
}
COLLECTION_TRANSITIONS: dict[int, frozenset[int]] = {
    status: frozenset((_CS_LIVE | COLLECTION_TERMINAL) - {status}) for status in _CS_LIVE
}
COLLECTION_TRANSITIONS |= {
    # Retry reopens a partly closed collection; a closed one is final.
    CollectionStatus.SUBCLOSED: frozenset(
        {CollectionStatus.OPEN, CollectionStatus.PROCESSING, CollectionStatus.CLOSED}
    ),
    CollectionStatus.FAILED: frozenset({CollectionStatus.OPEN, CollectionStatus.PROCESSING}),
    CollectionStatus.CLOSED: frozenset({CollectionStatus.DELETED}),
    CollectionStatus.CANCELLED: frozenset({CollectionStatus.DELETED}),
    CollectionStatus.DELETED: frozenset(),
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


CONTENT_TERMINAL = frozenset({ContentStatus.AVAILABLE, ContentStatus.FINAL_FAILED, ContentStatus.DELETED})
CONTENT_TRANSITIONS: dict[int, frozenset[int]] = {
    ContentStatus.NEW: frozenset(
        {
            ContentStatus.PROCESSING,
            ContentStatus.AVAILABLE,
            ContentStatus.FAILED,
            ContentStatus.FINAL_FAILED,
            ContentStatus.LOST,
            ContentStatus.DELETED,
            ContentStatus.MAPPED,
        }
    ),
    ContentStatus.MAPPED: frozenset(
        {
            ContentStatus.NEW,
            ContentStatus.PROCESSING,
            ContentStatus.AVAILABLE,
            ContentStatus.FAILED,
            ContentStatus.FINAL_FAILED,
            ContentStatus.DELETED,
        }
    ),
    ContentStatus.PROCESSING: frozenset(
        {
            ContentStatus.NEW,
            ContentStatus.AVAILABLE,
            ContentStatus.FAILED,
            ContentStatus.FINAL_FAILED,
            ContentStatus.LOST,
            ContentStatus.DELETED,
        }
    ),
    # A failed file can be retried (New/Processing) or still arrive late (Available).
    ContentStatus.FAILED: frozenset(
        {
            ContentStatus.NEW,
            ContentStatus.PROCESSING,
            ContentStatus.AVAILABLE,
            ContentStatus.FINAL_FAILED,
            ContentStatus.DELETED,
        }
    ),
    ContentStatus.LOST: frozenset(
        {
            ContentStatus.NEW,
            ContentStatus.PROCESSING,
            ContentStatus.AVAILABLE,
            ContentStatus.FINAL_FAILED,
            ContentStatus.DELETED,
        }
    ),
    ContentStatus.FINAL_FAILED: frozenset({ContentStatus.NEW, ContentStatus.DELETED}),
    ContentStatus.AVAILABLE: frozenset({ContentStatus.LOST, ContentStatus.DELETED}),
    ContentStatus.DELETED: frozenset(),
}


class MessageStatus(models.IntegerChoices):
    NEW = 0, "New"
    FETCHED = 1, "Fetched"
    DELIVERED = 2, "Delivered"
    FAILED = 3, "Failed"


# The conductor's work: messages not yet confirmed by every sink.
MESSAGE_UNDELIVERED = frozenset({MessageStatus.NEW, MessageStatus.FETCHED})
MESSAGE_TRANSITIONS: dict[int, frozenset[int]] = {
    MessageStatus.NEW: frozenset({MessageStatus.FETCHED, MessageStatus.DELIVERED, MessageStatus.FAILED}),
    MessageStatus.FETCHED: frozenset({MessageStatus.NEW, MessageStatus.DELIVERED, MessageStatus.FAILED}),
    # An operator re-queues a failed message; a delivered one may be re-sent on request.
    MessageStatus.FAILED: frozenset({MessageStatus.NEW}),
    MessageStatus.DELIVERED: frozenset({MessageStatus.NEW}),
}

# Colours for status badges in admin and monitor pages (kept next to the choices).
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
