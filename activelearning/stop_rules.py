"""Stop rules the service applies when a batch's results are in, so the user's program need not encode them.

Each rule returns the sentence recorded as the loop's stop reason, or None. Metrics are the numbers the tasks
reported (``metrics``, or the numeric entries of ``results`` when it is an object), possibly replaced by the
merge step's ``metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from activelearning.config import LoopConfig


def metrics_of(results: Any, metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The numeric metrics of one report: ``metrics`` when given, else the numbers in ``results``."""
    source = metrics if metrics else (results if isinstance(results, Mapping) else {})
    return {
        str(k): float(v)
        for k, v in source.items()
        if not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    }


def _better(mode: str, a: float, b: float) -> bool:
    return a < b if mode == "min" else a > b


def _best(mode: str, values: Sequence[float]) -> float:
    return min(values) if mode == "min" else max(values)


def max_iterations_reason(config: LoopConfig, iteration: int) -> str | None:
    if iteration >= config.max_iterations:
        return f"reached max_iterations={config.max_iterations}"
    return None


def deadline_reason(config: LoopConfig, started_at: datetime, now: datetime) -> str | None:
    if config.deadline_seconds is not None and (now - started_at).total_seconds() >= config.deadline_seconds:
        return f"reached its deadline of {config.deadline_seconds:g} s"
    return None


def target_reason(config: LoopConfig, batch_metrics: Sequence[Mapping[str, float]]) -> str | None:
    """The target is met when any result of the batch reaches it."""
    rule = config.target
    if not rule:
        return None
    values = [m[rule["metric"]] for m in batch_metrics if rule["metric"] in m]
    if not values:
        return None
    best = _best(rule["mode"], values)
    if best == rule["value"] or _better(rule["mode"], best, rule["value"]):
        return f"target met: {rule['metric']}={best:g} (target {rule['mode']} {rule['value']:g})"
    return None


def plateau_reason(config: LoopConfig, bests: Sequence[float]) -> str | None:
    """``bests`` holds the best value of the metric per iteration, oldest first."""
    rule = config.plateau
    if not rule:
        return None
    patience, mode = int(rule["patience"]), rule["mode"]
    if len(bests) <= patience:
        return None
    before, recent = _best(mode, bests[:-patience]), _best(mode, bests[-patience:])
    gain = before - recent if mode == "min" else recent - before
    if gain <= rule["delta"]:
        return (
            f"plateau: {rule['metric']} improved by {gain:g} (<= delta {rule['delta']:g}) "
            f"over the last {patience} iteration(s)"
        )
    return None
