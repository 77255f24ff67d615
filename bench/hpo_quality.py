"""HPO generator quality: median final regret of every built-in generator next to Optuna's TPE and GP samplers.

Each (generator, function, batch size, seed) run evaluates up to ``--evals`` points the way a study with B
parallel workers does: ask for B points, evaluate them, and only then tell the B losses (generators see the whole
history, the batch's points pending until it is told). Optuna's samplers follow the same protocol: B trials are
asked before any is told. B = 1 is the sequential case. Regret = best loss found minus the function's known
minimum. Runs are spread over ``--jobs`` processes.

Every run also counts its *close pairs*: two points of the study closer than 1e-3 of every parameter's range
(Chebyshev distance in the unit cube below 1e-3), each one a wasted evaluation.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/hpo_quality.py --batches 1,5,10        # full run, long
    .venv/bin/python bench/hpo_quality.py --seeds 2 --generators bayesian,tpe --functions branin --batches 5
    .venv/bin/python bench/hpo_quality.py --variants bayesian-standardize               # loss scaling off
    .venv/bin/python bench/hpo_quality.py --timing 1000,5000   # seconds for 10 bayesian points after N points

Optuna (and torch for GPSampler) are benchmark-only dependencies: ``pip install -r requirements-bench.txt``.
The last line printed is one JSON object with every median, the close-pair counts and the ratios of bayesian to
each peer at the same batch size.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
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


def rosenbrock4(p: Point) -> float:
    """Rosenbrock 4-D on [-2.048, 2.048]^4: a curved valley, losses from 0 to ~4e3 (orders of magnitude)."""
    x = np.array([p[f"x{i}"] for i in range(4)])
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def styblinski_tang5(p: Point) -> float:
    """Styblinski-Tang 5-D on [-5, 5]^5: 2^5 local minima, the global one at x_i = -2.903534."""
    x = np.array([p[f"x{i}"] for i in range(5)])
    return float(0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x))


def levy5(p: Point) -> float:
    """Levy 5-D on [-10, 10]^5: many local minima in a rugged bowl; minimum 0 at x_i = 1."""
    w = 1.0 + (np.array([p[f"x{i}"] for i in range(5)]) - 1.0) / 4.0
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(math.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + math.sin(2.0 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


def camel6(p: Point) -> float:
    """Six-hump camel on [-3, 3] x [-2, 2]: six local minima, two global ones of -1.0316285."""
    x, y = p["x"], p["y"]
    return (4.0 - 2.1 * x * x + x**4 / 3.0) * x * x + x * y + (-4.0 + 4.0 * y * y) * y * y


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
    "rosenbrock4": Problem(rosenbrock4, {f"x{i}": [-2.048, 2.048] for i in range(4)}, 0.0),
    "styblinski5": Problem(styblinski_tang5, {f"x{i}": [-5.0, 5.0] for i in range(5)}, -39.16616570377142 * 5),
    "levy5": Problem(levy5, {f"x{i}": [-10.0, 10.0] for i in range(5)}, 0.0),
    "camel6": Problem(camel6, {"x": [-3.0, 3.0], "y": [-2.0, 2.0]}, -1.031628453489877),
}

#: Our generators by benchmark name: (method, options). ``bayesian-standardize`` is the bayesian generator with
#: loss scaling off and ``nevergrad-twopointsde`` the nevergrad generator's old default, for before/after figures.
OURS: dict[str, tuple[str, dict[str, Any]]] = {
    "bayesian": ("bayesian", {}),
    "bayesian-standardize": ("bayesian", {"output_transform": "standardize"}),
    "bayesian-log": ("bayesian", {"output_transform": "log"}),
    "bayesian-believer": ("bayesian", {"batch_strategy": "believer"}),
    "bayesian-thompson": ("bayesian", {"batch_strategy": "thompson"}),
    "bayesian-fantasies": ("bayesian", {"batch_strategy": "fantasies"}),
    "bayesian-local": ("bayesian", {"batch_strategy": "local"}),
    # The trust region of the "local" batch strategy, measured with one global point per generation: the old
    # default (0.15) and the others tried (docs/hpo-quality.md).
    "bayesian-tr05": ("bayesian", {"trust_half_width": 0.05, "global_points": 1}),
    "bayesian-tr08": ("bayesian", {"trust_half_width": 0.08, "global_points": 1}),
    "bayesian-tr15": ("bayesian", {"trust_half_width": 0.15, "global_points": 1}),
    "bayesian-tr35": ("bayesian", {"trust_half_width": 0.35, "global_points": 1}),
    # How many points of a generation are global before the trust region: the old default (1).
    "bayesian-global1": ("bayesian", {"global_points": 1}),
    "random": ("random", {}),
    "grid": ("grid", {}),
    "nevergrad": ("nevergrad", {}),
    "nevergrad-twopointsde": ("nevergrad", {"optimizer": "TwoPointsDE"}),
    "bayesopt-ucb": ("bayesian", {"acquisition": "ucb", "output_transform": "standardize"}),
    "bayesopt-ei": ("bayesian", {"acquisition": "ei", "output_transform": "standardize"}),
}
OPTUNA = ("tpe", "gp")


def ours(name: str) -> tuple[str, dict[str, Any]]:
    """(method, options) of a benchmark name: one of ``OURS``, or ``nevergrad:<optimizer>`` for any optimiser."""
    if name.startswith("nevergrad:"):
        return "nevergrad", {"optimizer": name.split(":", 1)[1]}
    return OURS[name]


DEFAULT_GENERATORS = "bayesian,random,nevergrad,tpe,gp"
#: Nevergrad runs in its own virtual environment as a subprocess (one per generation, ~2.5 s of interpreter start
#: and imports): 50 of them per sequential run would dominate the benchmark, so it only runs at B >= this.
NEVERGRAD_MIN_BATCH = 5
#: Two points closer than this in every unit-cube column (a fraction of each parameter's range) are a close pair.
CLOSE = 1e-3
SLOW = ("gp", "nevergrad", "nevergrad-twopointsde", *(name for name in OURS if name.startswith("bayesian")))


# --- runs ----------------------------------------------------------------------------------------------------


def close_pairs(space: SearchSpace, points: list[Point]) -> int:
    """Pairs of points closer than ``CLOSE`` of every parameter's range (Chebyshev distance in the cube)."""
    if len(points) < 2:
        return 0
    cube = np.array([space.encode(p) for p in points])
    gaps = np.abs(cube[:, None, :] - cube[None, :, :]).max(-1)
    return int((gaps[np.triu_indices(len(points), 1)] < CLOSE).sum())


#: One nevergrad interpreter per benchmark process and venv, shared by every run of that process.
_NEVERGRAD_SERVERS: dict[str, subprocess.Popen] = {}


def _close_nevergrad_servers() -> None:
    for process in _NEVERGRAD_SERVERS.values():
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=60)


class _NevergradServer:
    """The nevergrad generator with its runner kept in one interpreter (see bench/nevergrad_serve.py): the same
    payload and output checks as ``NevergradGenerator.generate``, without a sandboxed process start (seconds of
    interpreter start and imports) per generation."""

    def __init__(self, generator: Any) -> None:
        from hpo.nevergrad_env import ensure_venv

        self.generator = generator
        python = str(ensure_venv(generator._venv))
        if python not in _NEVERGRAD_SERVERS:
            if not _NEVERGRAD_SERVERS:
                atexit.register(_close_nevergrad_servers)
            serve = Path(__file__).resolve().parent / "nevergrad_serve.py"
            _NEVERGRAD_SERVERS[python] = subprocess.Popen(
                [python, "-I", str(serve)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        self.process = _NEVERGRAD_SERVERS[python]

    def generate(self, history: list, num_points: int, max_points: int) -> list[Point]:
        wanted = self.generator.budget(history, num_points, max_points)
        if wanted == 0:
            return []
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(self.generator.payload(history, wanted, num_points, max_points)) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the nevergrad server died (its stderr is above)")
        return self.generator.accept_output(json.loads(line), history, wanted)


def run_ours(name: str, problem: Problem, seed: int, evals: int, batch: int) -> tuple[float, list[Point]]:
    """Best loss found by one of our generators asked ``batch`` points at a time, and every point evaluated."""
    method, options = ours(name)
    space: SearchSpace = parse_space(problem.space)
    generator = generator_class(method)(space, seed=seed, options=options)
    if method == "nevergrad":
        generator = _NevergradServer(generator)
    history: list[tuple[Point, float | None]] = []
    while len(history) < evals:
        points = generator.generate(history, batch, evals)
        if not points:
            break
        # The whole batch is told at once, after every point of it was proposed: B parallel workers.
        history.extend((p, problem.func(p)) for p in points)
    return min(loss for _, loss in history), [p for p, _ in history]


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


def run_optuna(name: str, problem: Problem, seed: int, evals: int, batch: int) -> tuple[float, list[Point]]:
    """Best loss found by Optuna's TPESampler or GPSampler with their defaults, ``batch`` trials asked per tell."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(problem.space)
    sampler = optuna.samplers.TPESampler(seed=seed) if name == "tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    points: list[Point] = []
    while len(points) < evals:
        trials = [study.ask() for _ in range(min(batch, evals - len(points)))]
        asked = [_optuna_suggest(trial, space) for trial in trials]
        for trial, point in zip(trials, asked, strict=True):
            study.tell(trial, problem.func(point))
        points.extend(asked)
    return study.best_value, points


def run_one(job: tuple[str, str, int, int, int]) -> tuple[str, str, int, int, float, int, float]:
    """(generator, function, batch, seed, regret, close pairs, seconds) of one run."""
    name, function, batch, seed, evals = job
    problem = PROBLEMS[function]
    started = time.perf_counter()
    if name in OPTUNA:
        import torch

        torch.set_num_threads(1)
        best, points = run_optuna(name, problem, seed, evals, batch)
    else:
        best, points = run_ours(name, problem, seed, evals, batch)
    close = close_pairs(parse_space(problem.space), points)
    return name, function, batch, seed, best - problem.minimum, close, time.perf_counter() - started


def timing(sizes: list[int], options: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Seconds (wall and CPU) the bayesian generator takes for 10 points after ``sizes`` evaluated points.

    CPU seconds are the figure to compare on a shared machine: the generator is single-threaded (one BLAS
    thread), so on an idle core wall time equals CPU time.
    """
    problem = PROBLEMS["hartmann6"]
    space = parse_space(problem.space)
    figures: dict[str, dict[str, float]] = {}
    for size in sizes:
        points = space.sample(np.random.default_rng(size), size)
        history = [(p, problem.func(p)) for p in points]
        generator = generator_class("bayesian")(space, seed=0, options=options)
        started, cpu_started = time.perf_counter(), time.process_time()
        generator.generate(history, 10, size + 10)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        figures[str(size)] = {"wall": round(wall, 2), "cpu": round(cpu, 2)}
        print(
            f"bayesian: 10 points after {size} points (hartmann6, 6-D): {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True
        )
    return figures


def _jobs(args: argparse.Namespace, names: list[str], functions: list[str], batches: list[int]) -> list[tuple]:
    jobs = [
        (n, f, b, s, args.evals)
        for f in functions
        for b in batches
        for n in names
        for s in range(args.seeds)
        if not (n.startswith("nevergrad") and b < NEVERGRAD_MIN_BATCH)
    ]
    # Seed by seed, so that an interrupted run has every cell for its first seeds; within a seed, slow runs first
    # so the pool does not end on one long straggler.
    jobs.sort(key=lambda job: (job[3], job[0] not in SLOW, job[2]))
    return jobs


def _print_tables(names, functions, batches, medians, closes) -> dict[str, dict[str, float]]:
    """One table per function (generators x batch sizes); returns bayesian's ratio to each peer."""
    ratios: dict[str, dict[str, float]] = {}
    for f in functions:
        print(f"\n{f}: median final regret (close pairs summed over seeds)")
        print(f"{'generator':<22}" + "".join(f"{'B=' + str(b):>20}" for b in batches))
        for n in names:
            cells = []
            for b in batches:
                key = f"B{b}"
                if key in medians[n][f]:
                    cells.append(f"{medians[n][f][key]:>14.3g} ({closes[n][f][key]:>2})")
                else:
                    cells.append(f"{'-':>19}")
            print(f"{n:<22}" + " ".join(cells))
    if "bayesian" in names:
        for peer in (p for p in names if p != "bayesian"):
            for b in batches:
                row = {}
                for f in functions:
                    ours, theirs = medians["bayesian"][f].get(f"B{b}"), medians[peer][f].get(f"B{b}")
                    if ours is not None and theirs is not None:
                        row[f] = ours / theirs if theirs > 0 else math.inf
                if row:
                    ratios[f"bayesian/{peer}@B{b}"] = row
        print("\nratios of medians, bayesian / peer at the same batch size")
        for label, row in ratios.items():
            print(f"{label:<28}" + "".join(f"{f}={v:.3g}  " for f, v in row.items()))
    return ratios


def _markdown(names, functions, batches, medians, counts, closes, seeds) -> str:
    """One markdown table: a row per function and generator, a column per batch size: the median, the number of
    runs where fewer than ``seeds`` finished, and the close pairs summed over the runs where there were any."""
    lines = [
        "| function | generator | " + " | ".join(f"B = {b}" for b in batches) + " |",
        "|---|---|" + "---|" * len(batches),
    ]
    for f in functions:
        for n in names:
            cells = []
            for b in batches:
                key = f"B{b}"
                if key in medians[n][f]:
                    runs, close = counts[n][f][key], closes[n][f][key]
                    cells.append(
                        f"{medians[n][f][key]:.3g}"
                        + (f" ({runs} runs)" if runs < seeds else "")
                        + (f", {close} close" if close else "")
                    )
                else:
                    cells.append("")
            lines.append(f"| {f} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load_results(paths: list[str]) -> list[dict[str, Any]]:
    """Runs recorded by earlier invocations (one JSON object a line); a torn last line is skipped, and a run
    recorded twice (the same generator, function, batch, seed and budget in two files) counts once."""
    rows: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[(row["generator"], row["function"], row["batch"], row["seed"], row["evals"])] = row
    return list(rows.values())


def main() -> None:
    """Run every (generator, function, batch, seed), print tables and the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--batches", default="1,5,10", help="comma list of batch sizes B (points per generation)")
    parser.add_argument("--functions", default=",".join(PROBLEMS), help=f"comma list from {sorted(PROBLEMS)}")
    parser.add_argument(
        "--generators",
        default=DEFAULT_GENERATORS,
        help=f"comma list from {sorted([*OURS, *OPTUNA])}; bayesopt-ucb/ei are bayes-opt's own acquisitions",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--results",
        default="",
        help="JSON-lines file: each finished run is appended at once, and runs already in it are not run again "
        "(an interrupted benchmark resumes where it stopped)",
    )
    parser.add_argument(
        "--report", default="", help="comma list of --results files: print the tables and JSON from them, run nothing"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the medians as one markdown table")
    parser.add_argument(
        "--timing", default="", help="comma list of history sizes: time 10 bayesian points after each, then stop"
    )
    args = parser.parse_args()
    if args.timing:
        figures = timing([int(s) for s in args.timing.split(",")], {})
        print(json.dumps({"timing_seconds_for_10_points": figures}))
        return
    names = args.generators.split(",")
    functions = args.functions.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    started = time.perf_counter()
    rows = _load_results(args.report.split(",") if args.report else [args.results] if args.results else [])
    done_keys = {(r["generator"], r["function"], r["batch"], r["seed"], r["evals"]) for r in rows}
    jobs = [] if args.report else [job for job in _jobs(args, names, functions, batches) if job not in done_keys]
    if jobs:
        sink = open(args.results, "a") if args.results else None  # noqa: SIM115 — appended to as runs finish
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_one, job) for job in jobs]
            for done, future in enumerate(as_completed(futures), 1):
                name, function, batch, seed, regret, pairs, spent = future.result()
                row = {
                    "generator": name,
                    "function": function,
                    "batch": batch,
                    "seed": seed,
                    "evals": args.evals,
                    "regret": regret,
                    "close_pairs": pairs,
                    "seconds": round(spent, 2),
                }
                rows.append(row)
                if sink is not None:
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                # Progress on stderr: a full run takes a while on a shared machine.
                progress = f"[{done}/{len(jobs)}] {name} {function} B={batch} seed={seed}: regret {regret:.3g}"
                print(progress, file=sys.stderr)
        if sink is not None:
            sink.close()
    wall = time.perf_counter() - started

    regrets: dict[str, dict[str, dict[str, list[float]]]] = {n: {f: {} for f in functions} for n in names}
    close: dict[str, dict[str, dict[str, int]]] = {n: {f: {} for f in functions} for n in names}
    seconds: dict[str, float] = dict.fromkeys(names, 0.0)
    for row in rows:
        name, function, batch = row["generator"], row["function"], row["batch"]
        if name not in names or function not in functions or batch not in batches or row["seed"] >= args.seeds:
            continue
        if row["evals"] != args.evals:
            continue
        regrets[name][function].setdefault(f"B{batch}", []).append(row["regret"])
        close[name][function][f"B{batch}"] = close[name][function].get(f"B{batch}", 0) + row["close_pairs"]
        seconds[name] += row["seconds"]
    medians = {n: {f: {b: float(np.median(r)) for b, r in regrets[n][f].items()} for f in functions} for n in names}
    counts = {n: {f: {b: len(r) for b, r in regrets[n][f].items()} for f in functions} for n in names}
    print(f"median final regret, {args.evals} evaluations, {args.seeds} seeds, batch sizes {batches}")
    ratios = _print_tables(names, functions, batches, medians, close)
    if args.markdown:
        print("\n" + _markdown(names, functions, batches, medians, counts, close, args.seeds))
    print("\ncpu seconds: " + ", ".join(f"{n}={s:.0f}" for n, s in seconds.items()))
    summary = {
        "evals": args.evals,
        "seeds": args.seeds,
        "batches": batches,
        "median_regret": medians,
        "runs": counts,
        "close_pairs": close,
        "ratios": ratios,
        "cpu_seconds": {n: round(s, 1) for n, s in seconds.items()},
        "wall_seconds": round(wall, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
