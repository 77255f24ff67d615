"""HPO Celery tasks: thin adapters to hpo.generation and hpo.services.

Registered under ``hpo.handoffs.HpoTaskName``; generator runs go to their own queue
(``hpo_generate``) so slow bayesian or program runs never delay point checkouts and reports.
"""

from __future__ import annotations

from celery import shared_task

from hpo.generation import generation_run as run
from hpo.handoffs import HpoTaskName
from hpo.sweeps import studies_sweep as sweep


@shared_task(name=HpoTaskName.GENERATION_RUN, acks_late=True, reject_on_worker_lost=True)
def generation_run(processing_id: int) -> str:
    """Run one generation (time limits are set per study when it is enqueued)."""
    return run(processing_id=processing_id)


@shared_task(name=HpoTaskName.STUDIES_SWEEP, acks_late=True)
def studies_sweep() -> dict[str, int]:
    """Expired leases back to the pool, leases of ended studies released, idle studies ended (beat)."""
    return sweep()
