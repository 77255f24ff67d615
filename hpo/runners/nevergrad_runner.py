"""Nevergrad ask/tell as a generator program; runs in nevergrad's own venv (see hpo/nevergrad_env.py).

Usage: ``python nevergrad_runner.py IN OUT``. ``IN`` follows the generator contract plus a ``nevergrad``
section: ``{"points": [[point, loss|null], ...], "opt_space": <native form>, "num_points": n,
"nevergrad": {"optimizer": "CauchyOnePlusOne", "seed": 1, "budget": 50}}``. ``OUT`` receives a JSON list of new points.

This file is standalone on purpose: that venv has nevergrad and numpy, not Django nor this project.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import nevergrad as ng
import numpy as np

#: Asks per wanted point before giving up on finding one the study does not already have.
ASKS_PER_POINT = 20


def parametrization(space: dict[str, dict[str, Any]]) -> ng.p.Dict:
    """A nevergrad ``Dict`` parametrization of the native-form space."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "categorical":
            params[name] = ng.p.Choice(spec["choices"])
        elif kind == "ordinal":
            params[name] = ng.p.TransitionChoice(spec["choices"])
        elif "size" in spec:
            params[name] = ng.p.Array(shape=(spec["size"],), lower=spec["low"], upper=spec["high"])
        elif spec.get("log"):
            params[name] = ng.p.Log(lower=spec["low"], upper=spec["high"])
        else:
            params[name] = ng.p.Scalar(lower=spec["low"], upper=spec["high"])
        if kind == "int":
            params[name] = params[name].set_integer_casting()
    return ng.p.Dict(**params)


def plain(value: Any) -> Any:
    """JSON-ready Python values from nevergrad's numpy ones."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def within_bounds(point: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``point`` with every number clipped to its parameter's bounds.

    A log-scale parameter comes back as ``exp`` of a value inside its log bounds, which can land a rounding error
    outside them (0.10000000000000002 for an upper bound of 0.1): the study would refuse the whole generation.
    """
    for name, spec in space.items():
        if "low" not in spec or "high" not in spec:
            continue
        low, high = spec["low"], spec["high"]
        value = point[name]
        point[name] = [min(max(v, low), high) for v in value] if isinstance(value, list) else min(max(value, low), high)
    return point


def key(point: dict[str, Any]) -> str:
    """Identity of a point for duplicate checks (12 significant digits, like hpo.space.SearchSpace.key)."""

    def norm(v: Any) -> Any:
        if isinstance(v, list):
            return [norm(x) for x in v]
        return float(f"{v:.12g}") if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    return json.dumps({k: norm(v) for k, v in sorted(point.items())})


def main(in_path: str, out_path: str) -> None:
    """Read ``IN``, write the new points to ``OUT``."""
    with open(in_path) as handle:
        doc = json.load(handle)
    points = propose(doc)
    with open(out_path, "w") as handle:
        json.dump(points, handle)


def propose(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Tell the history, mark pending points as asked, ask for the new ones."""
    settings = doc.get("nevergrad", {})
    param = parametrization(doc["opt_space"])
    # Seeded by (seed, history length) like the in-process generators: a generation re-seeded with the seed alone
    # would draw the same mutations as every generation before it.
    param.random_state = np.random.RandomState([int(settings.get("seed", 0)), len(doc["points"])])
    optimizer_class = ng.optimizers.registry[settings.get("optimizer", "CauchyOnePlusOne")]
    wanted = int(doc.get("num_points", 1))
    optimizer = optimizer_class(
        parametrization=param, budget=int(settings.get("budget", 100)), num_workers=max(wanted, 1)
    )
    taken = set()
    for point, loss in doc["points"]:
        taken.add(key(point))
        # Replay the history as if this optimizer had asked for every point itself: most nevergrad optimisers
        # (NGOpt's choices among them) learn nothing from candidates told without being asked.
        optimizer.suggest(point)
        candidate = optimizer.ask()
        if loss is not None:
            optimizer.tell(candidate, float(loss))
    points = []
    for _ in range(wanted * ASKS_PER_POINT):
        if len(points) == wanted:
            break
        value = within_bounds(plain(optimizer.ask().value), doc["opt_space"])
        if key(value) in taken:
            continue
        taken.add(key(value))
        points.append(value)
    return points


if __name__ == "__main__":
    # Some nevergrad optimisers (the scipy-based "recast" ones) run in helper threads that never end; a normal
    # interpreter exit would wait for them forever. Leave with os._exit once the output is written, or failed.
    try:
        main(sys.argv[1], sys.argv[2])
    except BaseException:  # noqa: BLE001 — any failure: report it and exit non-zero
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)
