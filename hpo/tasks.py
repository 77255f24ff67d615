"""HPO Celery tasks: thin adapters to hpo.generation and hpo.services (STYLE T1).

Generators run on their own queue (``hpo_generate``) so slow bayesian or program runs never delay point
checkouts and reports; the sweep runs on ``hpo``.
"""

from __future__ import annotations

from celery import shared_task

from hpo.generation import generation_run
from hpo.services import leases_expire, leases_release_ended, studies_time_out


@shared_task(name="hpo.generate.run", acks_late=True, reject_on_worker_lost=True)
def run_generation(processing_id: int) -> str:
    """Run one generation (time limits are set per study when it is enqueued)."""
    return generation_run(processing_id=processing_id)


@shared_task(name="hpo.sweep", acks_late=True)
def sweep() -> dict[str, int]:
    """Return expired leases to the pool and end idle studies; beat runs it (settings ``hpo-sweep``)."""
    return {
        "leases_expired": leases_expire(),
        "leases_released": leases_release_ended(),
        "studies_timed_out": studies_time_out(),
    }
