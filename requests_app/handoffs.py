"""Hand-offs: every "start the next agent" of the core, in one place.

A service that finishes its step calls one of these functions; each enqueues the Celery task of
the next step **after the caller's transaction commits** (outside a transaction: at once), so a
worker never sees a row before it exists and a rolled-back step starts nothing.

Tasks are sent by their registered name when a hand-off fires, so this module imports no
``tasks`` module and the layers stay acyclic::

    API / commands -> services -> handoffs          Celery worker -> tasks -> services

``TaskName`` is the one list of the core's task names: ``requests_app/tasks.py`` registers each
task under its name (and a test checks that every name here is registered). A task is named after
the service it runs. Submit and poll run on the work type's own queue (``WorkType.queue``), so a
site can give each work type its own workers; every other task is routed by the ``idds.<agent>.*``
prefix of its name (``CELERY_TASK_ROUTES``).
"""

from __future__ import annotations

from enum import StrEnum
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from requests_app.models.leases import CONDUCTOR_LEASE, AgentLease

#: Cache keys of the conductor's wake window (``messages_written``).
WAKE_LEADING_MARK = "idds:conductor-woken"
WAKE_TRAILING_MARK = "idds:conductor-wake-scheduled"
#: A scheduled wake runs this long after its mark expired (cache expiry is not to the millisecond).
WAKE_MARGIN = 0.02


class TaskName(StrEnum):
    """Registered names of the core's tasks: ``idds.<agent>.<service it runs>``."""

    REQUEST_PROCESS = "idds.clerk.request_process"
    TRANSFORM_PLAN = "idds.transformer.transform_plan"
    PROCESSING_SUBMIT = "idds.carrier.processing_submit"
    PROCESSING_POLL = "idds.carrier.processing_poll"
    POLLS_ENQUEUE_DUE = "idds.carrier.polls_enqueue_due"
    TRANSFORM_ROLLUP = "idds.rollup.transform_rollup"
    REQUEST_CONTROL = "idds.rollup.request_control"
    MESSAGES_DELIVER = "idds.conductor.messages_deliver"
    WATCHDOG_SWEEP = "idds.watchdog.watchdog_sweep"
    REQUESTS_EXPIRE_OVERDUE = "idds.watchdog.requests_expire_overdue"


def send_now(name: str, *args: Any, **options: Any) -> None:
    """Enqueue the task registered as ``name`` at once (for callers with nothing to commit first).

    Sent by name: web processes and commands never import the task modules (Celery imports them in
    workers only), and the router picks the queue from the name (``CELERY_TASK_ROUTES``).
    """
    if current_app.conf.task_always_eager:
        # Eager mode (debugging) runs the task here, so it must be registered in this process.
        current_app.loader.import_default_modules()
        current_app.tasks[name].apply(args)
        return
    current_app.send_task(name, args=args, **options)


def send_once_per_window(name: str, *args: Any, mark: str, window: float, margin: float) -> None:
    """Enqueue ``name`` to run ``margin`` seconds after a window of ``window`` seconds, unless ``mark`` says this
    window already has its run: the debounce of the HPO roll-up and of the conductor's wake-ups.

    Callers check after their transaction committed, and the run starts after the mark expired, so it reads
    everything committed by the callers that found the mark. A lost mark (another process's cache, an evicted
    entry) only costs an extra run.
    """
    if cache.add(mark, 1, timeout=window):
        send_now(name, *args, countdown=window + margin)


def send_after_commit(name: str, *args: Any, **options: Any) -> None:
    """Enqueue the task registered as ``name`` once the current transaction commits."""
    transaction.on_commit(partial(send_now, name, *args, **options))


def request_accepted(request_id: int) -> None:
    """A request was stored or is ready again: the clerk turns it into transforms."""
    send_after_commit(TaskName.REQUEST_PROCESS, request_id)


def request_retry_admission(request_id: int, *, countdown: float) -> None:
    """A throttled request asks the clerk again after ``countdown`` seconds."""
    send_after_commit(TaskName.REQUEST_PROCESS, request_id, countdown=countdown)


def transform_created(transform_id: int) -> None:
    """A new transform: the transformer plans its collections, contents and processings."""
    send_after_commit(TaskName.TRANSFORM_PLAN, transform_id)


def processing_ready(processing_id: int, *, queue: str, countdown: float | None = None) -> None:
    """A processing to submit (new, retried, or after a back-off), on its work type's queue."""
    send_after_commit(TaskName.PROCESSING_SUBMIT, processing_id, queue=queue, countdown=countdown)


def poll_due(processing_id: int, *, queue: str, countdown: float | None = None) -> None:
    """Poll a submitted processing after ``countdown`` seconds, on its work type's queue."""
    send_after_commit(TaskName.PROCESSING_POLL, processing_id, queue=queue, countdown=countdown)


def transform_changed(transform_id: int) -> None:
    """A processing ended or a content changed state: the roll-up decides what comes next."""
    send_after_commit(TaskName.TRANSFORM_ROLLUP, transform_id)


def request_stop_requested(request_id: int) -> None:
    """Abort, finish or expiry was recorded: the control step stops the outside work."""
    send_after_commit(TaskName.REQUEST_CONTROL, request_id)


def expiry_backlog_remains() -> None:
    """The lifetime sweep expired a full batch: take the next one now rather than at the next beat."""
    send_after_commit(TaskName.REQUESTS_EXPIRE_OVERDUE)


def messages_written() -> None:
    """New outbox rows: ask for a conductor run after commit, at most twice per wake window.

    A report of an HPO point writes one message, so at hundreds of reports per second a conductor
    run per message cost each report a lease query and a task send, and the worker a run that found
    one message (bench/hpo_service.py: ~5,000 conductor runs for ~9,600 messages). Per window of
    ``IDDS_CONDUCTOR_WAKE_SECONDS`` the first message wakes the conductor at once, so a lone message
    is not delayed, and the second schedules one run for just after the window's end
    (``send_once_per_window``, as the HPO roll-up does), which covers every message of the window;
    the rest send nothing.
    """
    transaction.on_commit(_wake_conductor)


def _wake_conductor() -> None:
    window = settings.IDDS_CONDUCTOR_WAKE_SECONDS
    if window <= 0 or cache.add(WAKE_LEADING_MARK, 1, timeout=window):
        # A conductor that holds its lease reads the outbox once more after it lets go (see
        # ``messages_deliver``), so it delivers these too: a run requested now would only find the
        # lease taken. That was half of all conductor runs in bench/carousel.py.
        if not AgentLease.is_held(CONDUCTOR_LEASE):
            send_now(TaskName.MESSAGES_DELIVER)
    else:
        send_once_per_window(TaskName.MESSAGES_DELIVER, mark=WAKE_TRAILING_MARK, window=window, margin=WAKE_MARGIN)
