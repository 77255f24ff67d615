"""HPO generator quality: median final regret of every built-in generator next to Optuna's TPE and GP samplers.

Each (generator, function, seed) run evaluates up to ``--evals`` points sequentially: ask for points, evaluate
them, tell the losses, exactly as a study does (generators see the whole history). Regret = best loss found
minus the function's known minimum. Runs are spread over ``--jobs`` processes.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/hpo_quality.py            # full run, ~15 min on 2 cores
    .venv/bin/python bench/hpo_quality.py --seeds 2 --generators bayesian,tpe --functions branin

Optuna (and torch for GPSampler) are benchmark-only dependencies: ``pip install -r requirements-bench.txt``.
The last line printed is one JSON object with every median and the ratios of bayesian to each Optuna sampler.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before numpy loads: one BLAS thread per process, the pool provides the parallelism.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")

from hpo.generators import generator_class  # noqa: E402
from hpo.space import Point, SearchSpace  # noqa: E402
from hpo.space_forms import parse_space  # noqa: E402

# --- test functions ------------------------------------------------------------------------------------------

_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(p: Point) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]; three global minima of 0.397887."""
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(p: Point) -> float:
    """Hartmann 6-D on the unit cube; minimum -3.32237, a deceptive local minimum at -3.2032."""
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def mixed(p: Point) -> float:
    """A mixed space: log-scale float, int and categorical (shifted sphere; minimum 0 at lr=1e-3, layers=3, "b")."""
    offset = {"a": 1.0, "b": 0.0, "c": 0.5}[p["act"]]
    return (math.log10(p["lr"]) + 3) ** 2 + 0.25 * (p["layers"] - 3) ** 2 + offset + (p["x"] - 0.3) ** 2


@dataclass(frozen=True)
class Problem:
    """A test function with its space and known minimum."""

    func: Callable[[Point], float]
    space: dict[str, Any]
    minimum: float


PROBLEMS: dict[str, Problem] = {
    "branin": Problem(branin, {"x1": [-5.0, 10.0], "x2": [0.0, 15.0]}, 0.397887357729739),
    "hartmann6": Problem(hartmann6, {f"x{i}": [0.0, 1.0] for i in range(6)}, -3.32236801141551),
    "mixed": Problem(
        mixed,
        {
            "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "layers": {"type": "int", "low": 1, "high": 8},
            "act": {"type": "categorical", "choices": ["a", "b", "c"]},
            "x": {"type": "float", "low": 0.0, "high": 1.0},
        },
        0.0,
    ),
}

#: Our generators and the batch size each is asked for. Nevergrad runs in its own virtual environment as a
#: subprocess (one per generation, ~2.5 s of interpreter start and imports), so it is asked for 10 points at a
#: time to keep the benchmark short.
OURS: dict[str, tuple[str, dict[str, Any], int]] = {
    "bayesian": ("bayesian", {}, 1),
    "random": ("random", {}, 1),
    "grid": ("grid", {}, 1),
    "nevergrad": ("nevergrad", {}, 10),
    "bayesopt-ucb": ("bayesian", {"acquisition": "ucb", "output_transform": "standardize"}, 1),
    "bayesopt-ei": ("bayesian", {"acquisition": "ei", "output_transform": "standardize"}, 1),
}
OPTUNA = ("tpe", "gp")
DEFAULT_GENERATORS = "bayesian,random,grid,nevergrad,tpe,gp"


# --- runs ----------------------------------------------------------------------------------------------------


def run_ours(name: str, problem: Problem, seed: int, evals: int) -> float:
    """Best loss found by one of our generators."""
    method, options, batch = OURS[name]
    space: SearchSpace = parse_space(problem.space)
    generator = generator_class(method)(space, seed=seed, options=options)
    history: list[tuple[Point, float | None]] = []
    while len(history) < evals:
        points = generator.generate(history, batch, evals)
        if not points:
            break
        history.extend((p, problem.func(p)) for p in points)
    return min(loss for _, loss in history)


def _optuna_suggest(trial: Any, space: SearchSpace) -> Point:
    point: Point = {}
    for p in space.params:
        if p.kind == "float":
            point[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            point[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            point[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return point


def run_optuna(name: str, problem: Problem, seed: int, evals: int) -> float:
    """Best loss found by Optuna's TPESampler or GPSampler with their defaults."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(problem.space)
    sampler = optuna.samplers.TPESampler(seed=seed) if name == "tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.optimize(lambda trial: problem.func(_optuna_suggest(trial, space)), n_trials=evals)
    return study.best_value


def run_one(job: tuple[str, str, int, int]) -> tuple[str, str, int, float, float]:
    """(generator, function, seed, regret, seconds) of one run."""
    name, function, seed, evals = job
    problem = PROBLEMS[function]
    started = time.perf_counter()
    if name in OPTUNA:
        import torch

        torch.set_num_threads(1)
        best = run_optuna(name, problem, seed, evals)
    else:
        best = run_ours(name, problem, seed, evals)
    return name, function, seed, best - problem.minimum, time.perf_counter() - started


def main() -> None:
    """Run every (generator, function, seed), print a table and the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--functions", default=",".join(PROBLEMS))
    parser.add_argument(
        "--generators",
        default=DEFAULT_GENERATORS,
        help=f"comma list from {sorted([*OURS, *OPTUNA])}; bayesopt-ucb/ei are bayes-opt's own acquisitions",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    names = args.generators.split(",")
    functions = args.functions.split(",")
    jobs = [(n, f, s, args.evals) for f in functions for n in names for s in range(args.seeds)]
    # Slow runs first so the pool does not end on one long straggler.
    jobs.sort(key=lambda job: job[0] not in ("gp", "nevergrad", "bayesian"))
    regrets: dict[str, dict[str, list[float]]] = {n: {f: [] for f in functions} for n in names}
    seconds: dict[str, float] = dict.fromkeys(names, 0.0)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name, function, _seed, regret, spent in pool.map(run_one, jobs):
            regrets[name][function].append(regret)
            seconds[name] += spent
    wall = time.perf_counter() - started

    medians = {n: {f: float(np.median(regrets[n][f])) for f in functions} for n in names}
    print(f"median final regret, {args.evals} evaluations, {args.seeds} seeds")
    print(f"{'generator':<14}" + "".join(f"{f:>14}" for f in functions) + f"{'cpu s':>10}")
    for n in names:
        print(f"{n:<14}" + "".join(f"{medians[n][f]:>14.3g}" for f in functions) + f"{seconds[n]:>10.0f}")
    ratios: dict[str, dict[str, float]] = {}
    if "bayesian" in names:
        for peer in (p for p in names if p != "bayesian"):
            ratios[f"bayesian/{peer}"] = {
                f: medians["bayesian"][f] / medians[peer][f] if medians[peer][f] > 0 else math.inf for f in functions
            }
            print(f"bayesian/{peer:<10}" + "".join(f"{ratios[f'bayesian/{peer}'][f]:>14.3g}" for f in functions))
    summary = {
        "evals": args.evals,
        "seeds": args.seeds,
        "median_regret": medians,
        "ratios": ratios,
        "cpu_seconds": {n: round(s, 1) for n, s in seconds.items()},
        "wall_seconds": round(wall, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
