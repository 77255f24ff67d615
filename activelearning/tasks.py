"""Active-learning Celery tasks: thin adapters to activelearning.steps and activelearning.services.

Registered under ``activelearning.handoffs.AlTaskName`` on the ``activelearning`` queue.
"""

from __future__ import annotations

from celery import shared_task

from activelearning.handoffs import AlTaskName
from activelearning.services import loop_check as check
from activelearning.steps import step_run as run


@shared_task(name=AlTaskName.STEP_RUN, acks_late=True, reject_on_worker_lost=True)
def step_run(step_id: int) -> str:
    """Run one decision step (time limits are set per request when it is enqueued)."""
    return run(step_id=step_id)


@shared_task(name=AlTaskName.LOOP_CHECK, acks_late=True)
def loop_check(transform_id: int) -> str:
    """A quorum's grace time or the loop's deadline has passed: look again."""
    return check(transform_id=transform_id)
