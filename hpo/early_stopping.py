"""Early stopping of bad evaluations: the study option ``early_stopping`` and its two rules.

A worker reports intermediate values (step, value) while it trains; each report is answered with
``continue`` or ``stop``. Lower values are better, as for the loss. The option is one of::

    {"rule": "median", "warmup_steps": 0, "min_points": 3}
        stop when the point's best value so far is worse than the median of the values other points
        reported at the same step; judged from step ``warmup_steps`` + 1 on, once ``min_points`` other
        points reported that step (the median stopping rule of Google Vizier; Optuna's MedianPruner).

    {"rule": "successive_halving", "min_steps": 1, "reduction_factor": 3}
        rungs at steps min_steps * reduction_factor**k (1, 3, 9, ... by default); a point that reports at a
        rung step continues only while its value there is among the best 1/reduction_factor of the values
        every point reported at that rung (the first point at a rung always continues); steps between rungs
        always continue (asynchronous successive halving, as in ASHA and Optuna's SuccessiveHalvingPruner).

The rules are pure functions of the values; ``hpo.services.point_intermediate`` reads the values and records
the outcome (a stopped point ends as Available with ``pruned: true`` and its last value as the loss).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from requests_app.errors import WorkTypeValidationError

MEDIAN = "median"
SUCCESSIVE_HALVING = "successive_halving"
#: (default, minimum, maximum) of each rule's integer parameters.
RULE_PARAMETERS: dict[str, dict[str, tuple[int, int, int]]] = {
    MEDIAN: {"warmup_steps": (0, 0, 10**9), "min_points": (3, 1, 10**6)},
    SUCCESSIVE_HALVING: {"min_steps": (1, 1, 10**9), "reduction_factor": (3, 2, 100)},
}
FIELD = "request_metadata.early_stopping"


@dataclass(frozen=True)
class Verdict:
    """The answer to one intermediate report."""

    stop: bool
    reason: str

    @property
    def decision(self) -> str:
        return "stop" if self.stop else "continue"


CONTINUE_NO_RULE = Verdict(False, "the study has no early stopping")


def early_stopping_validate(raw: Any) -> dict[str, Any] | None:
    """The cleaned option (every parameter filled in), None when off; 400s name the bad field."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise WorkTypeValidationError({FIELD: 'must be an object such as {"rule": "median"}, or null'})
    rule = raw.get("rule")
    if rule not in RULE_PARAMETERS:
        raise WorkTypeValidationError({f"{FIELD}.rule": f"must be one of {sorted(RULE_PARAMETERS)}, got {rule!r}"})
    parameters = RULE_PARAMETERS[rule]
    errors: dict[str, str] = {}
    unknown = sorted(set(raw) - {"rule", *parameters})
    if unknown:
        errors[FIELD] = f"unknown keys {unknown} for rule {rule!r}; allowed: {sorted(parameters)}"
    cleaned: dict[str, Any] = {"rule": rule}
    for name, (default, low, high) in parameters.items():
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[f"{FIELD}.{name}"] = f"must be an integer between {low} and {high}, got {value!r}"
            continue
        cleaned[name] = value
    if errors:
        raise WorkTypeValidationError(errors)
    return cleaned


def median_verdict(*, step: int, own_values: list[float], others_at_step: list[float], option: dict) -> Verdict:
    """The median rule: ``own_values`` are this point's values up to ``step``, ``others_at_step`` the values
    other points reported at ``step``."""
    if step <= option["warmup_steps"]:
        return Verdict(False, f"warm-up: steps up to {option['warmup_steps']} always continue")
    if len(others_at_step) < option["min_points"]:
        return Verdict(False, f"{len(others_at_step)} other point(s) reached step {step}; the rule needs "
                       f"{option['min_points']}")  # fmt: skip
    median = statistics.median(others_at_step)
    best = min(own_values)
    if best > median:
        return Verdict(True, f"best value {best:.6g} is worse than the median {median:.6g} at step {step}")
    return Verdict(False, f"best value {best:.6g} is no worse than the median {median:.6g} at step {step}")


def rung_of(step: int, option: dict) -> int | None:
    """The rung number whose step is ``step``, or None between rungs."""
    rung_step, rung = option["min_steps"], 0
    while rung_step < step:
        rung_step *= option["reduction_factor"]
        rung += 1
    return rung if rung_step == step else None


def halving_verdict(*, step: int, value: float, values_at_step: list[float], option: dict) -> Verdict:
    """Successive halving: ``values_at_step`` are every point's values at ``step`` (this one's included)."""
    rung = rung_of(step, option)
    if rung is None:
        return Verdict(False, f"step {step} is not a rung step")
    factor = option["reduction_factor"]
    kept = max(len(values_at_step) // factor, 1)
    threshold = sorted(values_at_step)[kept - 1]
    if value > threshold:
        return Verdict(True, f"value {value:.6g} is not among the best {kept} of {len(values_at_step)} at rung "
                       f"{rung} (step {step})")  # fmt: skip
    return Verdict(False, f"value {value:.6g} is among the best {kept} of {len(values_at_step)} at rung {rung}")
