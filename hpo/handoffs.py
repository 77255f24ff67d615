"""Hand-offs of the HPO work type: its Celery tasks, started by name after commit.

The same rule as the core's ``requests_app.handoffs`` (which this builds on): this module is the
only place that knows HPO's task names, and no module imports ``hpo.tasks`` (Celery's
autodiscovery registers it).
"""

from __future__ import annotations

from enum import StrEnum
from functools import partial

from django.conf import settings
from django.db import transaction

from requests_app import handoffs

#: Queue of HPO's submit and poll steps and its sweep; generator runs have their own (below).
HPO_QUEUE = "hpo"
#: Slow bayesian or program runs get their own queue so they never delay submits and polls.
GENERATE_QUEUE = "hpo_generate"
#: A generator run's Celery hard limit exceeds the study's generator timeout by this much, and its
#: soft limit (which lets it record why it stopped) by half of it.
TIME_LIMIT_MARGIN = 60
#: A debounced roll-up runs this long after its window's mark expired (cache expiry is not to the millisecond).
ROLLUP_MARGIN = 0.05


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


def study_changed(transform_id: int) -> None:
    """A point was reported: roll the study up once per ``HPO_ROLLUP_DEBOUNCE_SECONDS``, not once per report.

    At hundreds of reports per second a roll-up per report (each counting the study's points) kept a worker
    core busy and mostly answered "wait". After commit, the first report of a window schedules the roll-up
    for the window's end and marks the window; the reports after it in the window find the mark and send
    nothing. The roll-up runs after the mark expires, so it reads every report committed in the window:
    the mark is checked only once the report has committed, and the task's countdown exceeds the mark's
    life. A lost mark (another process, an evicted cache entry) only costs an extra roll-up.
    """
    window = settings.HPO_ROLLUP_DEBOUNCE_SECONDS
    if window <= 0:
        handoffs.transform_changed(transform_id)
        return
    transaction.on_commit(partial(_rollup_once_per_window, transform_id, window))


def _rollup_once_per_window(transform_id: int, window: float) -> None:
    handoffs.send_once_per_window(
        handoffs.TaskName.TRANSFORM_ROLLUP,
        transform_id,
        mark=f"hpo:rollup-due:{transform_id}",
        window=window,
        margin=ROLLUP_MARGIN,
    )
