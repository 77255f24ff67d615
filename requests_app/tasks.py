"""Celery tasks of the core: thin adapters from ids to services.

Each task is registered under its ``handoffs.TaskName`` and named after the service it runs
(``transform_plan`` runs ``transformer.transform_plan``). Nothing imports this module but Celery's
autodiscovery: services start tasks through ``requests_app.handoffs``.

Every task is idempotent (it re-checks state on entry) and acknowledged late, so a worker that
dies mid-task leaves the message to be redelivered and run again safely. Database hiccups and
transient outside failures are retried with exponential back-off.
"""

from __future__ import annotations

from celery import shared_task
from django.db import IntegrityError, OperationalError

from requests_app.errors import TransientError
from requests_app.handoffs import TaskName

from .services import carrier, clerk, conductor, lifetime, requests, rollup, transformer, watchdog

# Retried with back-off: lost DB connections, serialisation races (a concurrent duplicate
# transform hits the unique constraint, the retry then joins it) and outside hiccups.
RETRY_ON = (OperationalError, IntegrityError, TransientError)
COMMON = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": RETRY_ON,
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name=TaskName.REQUEST_PROCESS, **COMMON)
def request_process(request_id: int) -> list[int]:
    return clerk.request_process(request_id=request_id)


@shared_task(name=TaskName.TRANSFORM_PLAN, **COMMON)
def transform_plan(transform_id: int) -> list[int]:
    return transformer.transform_plan(transform_id=transform_id)


@shared_task(name=TaskName.PROCESSING_SUBMIT, **COMMON)
def processing_submit(processing_id: int) -> str:
    return carrier.processing_submit(processing_id=processing_id)


@shared_task(name=TaskName.PROCESSING_POLL, **COMMON)
def processing_poll(processing_id: int) -> str:
    return carrier.processing_poll(processing_id=processing_id)


@shared_task(name=TaskName.POLLS_ENQUEUE_DUE, **COMMON)
def polls_enqueue_due() -> int:
    return carrier.polls_enqueue_due()


@shared_task(name=TaskName.TRANSFORM_ROLLUP, **COMMON)
def transform_rollup(transform_id: int) -> str:
    return rollup.transform_rollup(transform_id=transform_id)


@shared_task(name=TaskName.REQUEST_CONTROL, **COMMON)
def request_control(request_id: int) -> str:
    return requests.request_control(request_id=request_id)


@shared_task(name=TaskName.MESSAGES_DELIVER, **COMMON)
def messages_deliver() -> int:
    return conductor.messages_deliver()


@shared_task(name=TaskName.WATCHDOG_SWEEP, **COMMON)
def watchdog_sweep() -> dict[str, int]:
    return watchdog.watchdog_sweep()


@shared_task(name=TaskName.REQUESTS_EXPIRE_OVERDUE, **COMMON)
def requests_expire_overdue() -> int:
    expired, _more_due = lifetime.requests_expire_overdue()
    return expired
