"""Hand-offs of the active-learning work type: its Celery tasks, started by name after commit.

Like ``hpo/handoffs.py``: this is the only module that knows the task names, and nobody imports
``activelearning.tasks`` (Celery's autodiscovery registers it).
"""

from __future__ import annotations

from enum import StrEnum

from requests_app import handoffs

#: Queue of the work type's submit and poll steps and of its decisions.
AL_QUEUE = "activelearning"
#: A decision's Celery hard limit exceeds the time of its program runs (merge + decision) by this much.
TIME_LIMIT_MARGIN = 60


class AlTaskName(StrEnum):
    """Registered names of the active-learning tasks (``activelearning/tasks.py``), named after their service."""

    STEP_RUN = "activelearning.step_run"
    LOOP_CHECK = "activelearning.loop_check"


def step_queued(step_id: int, *, timeout: float) -> None:
    """Run the decision step ``step_id`` (at most two program runs of ``timeout`` seconds each)."""
    handoffs.send_after_commit(
        AlTaskName.STEP_RUN,
        step_id,
        queue=AL_QUEUE,
        time_limit=2 * timeout + TIME_LIMIT_MARGIN,
        soft_time_limit=2 * timeout + TIME_LIMIT_MARGIN / 2,
    )


def loop_check_due(transform_id: int, *, countdown: float) -> None:
    """Look at the loop again in ``countdown`` seconds: a quorum's grace time or the deadline passes then."""
    handoffs.send_after_commit(AlTaskName.LOOP_CHECK, transform_id, queue=AL_QUEUE, countdown=max(0.0, countdown))


def loop_ended(processing_id: int) -> None:
    """The loop ended: poll its processing at once, so the roll-up finishes the request."""
    handoffs.poll_due(processing_id, queue=AL_QUEUE)
