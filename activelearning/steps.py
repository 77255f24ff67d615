"""One decision step: the optional merge program, then the decision, each in the sandbox; the outcome applied.

The programs run outside any transaction (they take up to ``timeout`` seconds each); ``step_apply`` then records
and applies their outcome in one short transaction under the loop lock.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from activelearning.config import LoopConfig
from activelearning.program import ProgramRun, ProgramSpec, callable_run, program_run
from activelearning.services import step_apply, step_start

logger = logging.getLogger(__name__)


def _spec(config: LoopConfig, program: dict[str, Any], owner: Any) -> ProgramSpec:
    return ProgramSpec(
        executable=program["executable"],
        arguments=program.get("arguments", ""),
        output_json=program.get("output_json"),
        sandbox=config.program.get("sandbox"),
        timeout=config.timeout,
        memory_mb=config.memory_mb,
        owner=owner,
    )


def _decide(config: LoopConfig, document: dict[str, Any], owner: Any, number: int) -> ProgramRun:
    if config.callable:
        return callable_run(config.callable, document)
    return program_run(_spec(config, config.program, owner), document, iteration=number)


def step_run(*, step_id: int) -> str:
    """Run the queued step ``step_id`` unless another worker took it; record and apply its outcome."""
    step = step_start(step_id=step_id)
    if step is None:
        return "nothing to do"
    request = step.loop.transform.request
    config = LoopConfig.from_metadata(request.request_metadata)
    document: dict[str, Any] = dict(step.input or {})
    merge_record = None
    try:
        if config.merge:
            merge = program_run(_spec(config, config.merge, request.owner), document, iteration=step.number)
            merge_record = merge.record()
            if not merge.ok:
                failed = ProgramRun(ok=False, error=f"the merge step failed: {merge.error}", program=merge.program)
                return step_apply(step_id=step_id, run=failed, merge=merge_record).status
            document["merged"] = merge.output
        run = _decide(config, document, request.owner, step.number)
    except SoftTimeLimitExceeded:
        run = ProgramRun(ok=False, error="the step exceeded its Celery time limit")
    return step_apply(step_id=step_id, run=run, merge=merge_record).status
