"""Hand-offs of the HPO work type: its Celery tasks, started by name after commit.

The same rule as the core's ``requests_app.handoffs`` (which this builds on): this module is the
only place that knows HPO's task names, and no module imports ``hpo.tasks`` (Celery's
autodiscovery registers it).
"""

from __future__ import annotations

from enum import StrEnum

from requests_app import handoffs

#: Queue of HPO's submit and poll steps and its sweep; generator runs have their own (below).
HPO_QUEUE = "hpo"
#: Slow bayesian or program runs get their own queue so they never delay submits and polls.
GENERATE_QUEUE = "hpo_generate"
#: A generator run's Celery hard limit exceeds the study's generator timeout by this much, and its
#: soft limit (which lets it record why it stopped) by half of it.
TIME_LIMIT_MARGIN = 60


class HpoTaskName(StrEnum):
    """Registered names of HPO's tasks (``hpo/tasks.py``), each named after the service it runs."""

    GENERATION_RUN = "hpo.generate.generation_run"
    STUDIES_SWEEP = "hpo.studies_sweep"


def generation_requested(processing_id: int, *, timeout: float) -> None:
    """Run the generator of ``processing_id`` on the generator queue, within the study's time limit."""
    handoffs.send_after_commit(
        HpoTaskName.GENERATION_RUN,
        processing_id,
        queue=GENERATE_QUEUE,
        time_limit=timeout + TIME_LIMIT_MARGIN,
        soft_time_limit=timeout + TIME_LIMIT_MARGIN / 2,
    )


def generation_finished(processing_id: int) -> None:
    """A generation stored its outcome: poll its processing at once instead of at the next poll."""
    handoffs.poll_due(processing_id, queue=HPO_QUEUE)
