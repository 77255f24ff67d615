"""Celery tasks: thin adapters from ids to services (STYLE T1), one queue per agent.

Every task is idempotent (it re-checks state on entry) and acknowledged late, so a worker that
dies mid-task leaves the message to be redelivered and run again safely. Database hiccups and
transient outside failures are retried with exponential back-off.
"""

from __future__ import annotations

from celery import shared_task
from django.db import IntegrityError, OperationalError

from requests_app.errors import TransientError

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


@shared_task(name="idds.clerk.process_request", **COMMON)
def process_request(request_id: int) -> list[int]:
    return clerk.request_process(request_id=request_id)


@shared_task(name="idds.transformer.plan_transform", **COMMON)
def plan_transform(transform_id: int) -> list[int]:
    return transformer.transform_plan(transform_id=transform_id)


@shared_task(name="idds.carrier.submit_processing", **COMMON)
def submit_processing(processing_id: int) -> str:
    return carrier.processing_submit(processing_id=processing_id)


@shared_task(name="idds.carrier.poll_processing", **COMMON)
def poll_processing(processing_id: int) -> str:
    return carrier.processing_poll(processing_id=processing_id)


@shared_task(name="idds.carrier.enqueue_due_polls", **COMMON)
def enqueue_due_polls() -> int:
    return carrier.enqueue_due_polls()


@shared_task(name="idds.rollup.rollup_transform", **COMMON)
def rollup_transform(transform_id: int) -> str:
    return rollup.transform_rollup(transform_id=transform_id)


@shared_task(name="idds.rollup.control_request", **COMMON)
def control_request(request_id: int) -> str:
    return requests.request_control(request_id=request_id)


@shared_task(name="idds.conductor.deliver", **COMMON)
def deliver_messages() -> int:
    return conductor.messages_deliver()


@shared_task(name="idds.watchdog.sweep", **COMMON)
def sweep() -> dict[str, int]:
    return watchdog.watchdog_sweep()


@shared_task(name="idds.watchdog.requests_expire_overdue", **COMMON)
def requests_expire_overdue() -> int:
    expired, more_due = lifetime.requests_expire_overdue()
    # A full batch: take the next one now rather than at the next beat (STYLE T7).
    if more_due:
        requests_expire_overdue.delay()
    return expired
