from __future__ import annotations

import json
import subprocess

import pytest

from hpo.generators.nevergrad import RUNNER, NevergradGenerator, default_optimizer
from hpo.nevergrad_env import default_venv_path, ensure_venv
from hpo.space_forms import parse_space
from tests.hpo.conftest import quadratic, run_study

SPACE = {
    "x": {"type": "Scalar", "bounds": [0, 1]},
    "y": {"type": "Scalar", "bounds": [0, 1]},
    "act": {"type": "Choice", "params": {"choices": ["relu", "tanh"]}},
    "n": {"type": "Scalar", "params": {"lower": 1, "upper": 4, "integer": True}},
    "lr": {"type": "Log", "params": {"lower": 1e-4, "upper": 1e-1}},
    "w": {"type": "Array", "params": {"shape": [2]}, "bounds": [-1, 1]},
}


@pytest.fixture(scope="module", autouse=True)
def nevergrad_venv():
    """Nevergrad lives in its own venv (it pins an old bayes-opt); build it once if this machine lacks it."""
    return ensure_venv(default_venv_path())


def test_it_proposes_valid_points_of_every_type():
    # given
    space = parse_space(SPACE)

    # when
    points = NevergradGenerator(space, seed=1).generate([], 4, 20)

    # then
    assert len(points) == 4
    for point in points:
        assert space.validate_point(point) == point


def test_it_is_reproducible_with_a_seed_and_skips_pending_points():
    # given
    space = parse_space(SPACE)
    first = NevergradGenerator(space, seed=5).generate([], 3, 20)
    history = [(first[0], 1.0), (first[1], None), (first[2], None)]

    # when
    second = NevergradGenerator(space, seed=5).generate(history, 3, 20)
    again = NevergradGenerator(space, seed=5).generate(history, 3, 20)

    # then
    assert second == again
    assert not {space.key(p) for p in first} & {space.key(p) for p in second}


def test_it_improves_on_a_smooth_loss_and_stops_at_the_budget():
    # given
    space = parse_space({"x": [0.0, 1.0], "y": [0.0, 1.0]})

    # when
    history = run_study(NevergradGenerator(space, seed=0), quadratic, max_points=30, batch=5)

    # then the default optimiser for this budget (CauchyOnePlusOne) beats its first generation later on
    assert len(history) == 30
    assert min(loss for _, loss in history[15:]) < min(loss for _, loss in history[:5])


@pytest.mark.parametrize(
    ("budget", "dimension", "batch", "expected"),
    [
        (50, 2, 5, "CauchyOnePlusOne"),
        (50, 6, 10, "CauchyOnePlusOne"),
        (50, 6, 20, "ScrHammersleySearchPlusMiddlePoint"),
        (5000, 6, 10, "NGOpt"),
        (300, 2, 1, "NGOpt"),
        (300, 5, 1, "CauchyOnePlusOne"),
    ],
)
def test_the_default_optimiser_depends_on_budget_dimension_and_batch(budget, dimension, batch, expected):
    # when / then
    assert default_optimizer(budget, dimension, batch) == expected


def test_auto_resolves_by_the_study_and_a_named_optimiser_is_kept():
    # given a 2 + 1 + 1 + 1 + 2 = 7 dimensional space
    space = parse_space(SPACE)

    # when
    automatic = NevergradGenerator(space)
    chosen = NevergradGenerator(space, options={"optimizer": "TwoPointsDE"})

    # then
    assert automatic.options["optimizer"] == "auto"
    assert automatic.optimizer_name(max_points=50, batch=10) == "CauchyOnePlusOne"
    assert automatic.optimizer_name(max_points=5000, batch=10) == "NGOpt"
    assert chosen.optimizer_name(max_points=50, batch=10) == "TwoPointsDE"


def test_a_named_optimiser_runs_in_the_venv():
    # given
    space = parse_space({"x": [0.0, 1.0], "y": [0.0, 1.0]})

    # when
    points = NevergradGenerator(space, seed=2, options={"optimizer": "TwoPointsDE"}).generate([], 4, 20)

    # then
    assert len(points) == 4
    assert len({space.key(p) for p in points}) == 4


def test_the_runner_clips_a_rounding_error_back_inside_the_bounds(nevergrad_venv):
    # given OnePlusOne's proposal that failed a whole generation of the quality benchmark (a log-scale upper
    # bound of 0.1 came back as exp(log(0.1)))
    space = {
        "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
        "w": {"type": "float", "low": -1.0, "high": 1.0, "size": 2},
        "act": {"type": "categorical", "choices": ["a", "b"]},
    }
    point = {"lr": 0.10000000000000002, "w": [-1.0000000000000002, 0.5], "act": "b"}
    script = (
        f"import json, sys; sys.path.insert(0, {str(RUNNER.parent)!r}); from nevergrad_runner import within_bounds; "
        f"print(json.dumps(within_bounds({point!r}, {space!r})))"
    )

    # when: the runner's own code, in the venv it runs in
    result = subprocess.run([str(nevergrad_venv), "-I", "-c", script], capture_output=True, text=True, check=True)

    # then
    assert json.loads(result.stdout) == {"lr": 0.1, "w": [-1.0, 0.5], "act": "b"}
