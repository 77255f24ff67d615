from __future__ import annotations

import pytest

from hpo.generators.bayesian import BayesianGenerator
from hpo.space_forms import parse_space
from tests.hpo.conftest import quadratic, run_study

SQUARE = {"x": [0.0, 1.0], "y": [0.0, 1.0]}


def test_it_minimises_a_smooth_loss():
    # given
    generator = BayesianGenerator(parse_space(SQUARE), seed=0)

    # when
    history = run_study(generator, quadratic, max_points=20)

    # then random search would need ~10^4 points to get this close
    assert len(history) == 20
    assert min(loss for _, loss in history) < 1e-3


def test_it_is_reproducible_with_a_seed():
    # given
    space = parse_space(SQUARE)
    history = [({"x": 0.1, "y": 0.2}, 0.4), ({"x": 0.9, "y": 0.5}, 0.4), ({"x": 0.5, "y": 0.9}, 0.08)]

    # when
    first = BayesianGenerator(space, seed=3, options={"initial_design": 2}).generate(history, 3, 50)
    again = BayesianGenerator(space, seed=3, options={"initial_design": 2}).generate(history, 3, 50)

    # then
    assert first == again
    assert len(first) == 3


def test_it_spreads_a_batch_instead_of_repeating_the_best_guess():
    # given a model-driven generation of four points with two points still pending
    space = parse_space(SQUARE)
    history = [
        ({"x": x, "y": y}, quadratic({"x": x, "y": y})) for x, y in [(0.1, 0.1), (0.9, 0.9), (0.2, 0.8), (0.6, 0.4)]
    ]
    history += [({"x": 0.3, "y": 0.6}, None), ({"x": 0.4, "y": 0.75}, None)]

    # when
    points = BayesianGenerator(space, seed=1, options={"initial_design": 2}).generate(history, 4, 50)

    # then no proposal sits on another one or on a pending point
    spots = [(p["x"], p["y"]) for p, _ in history[4:]] + [(p["x"], p["y"]) for p in points]
    gaps = [abs(a[0] - b[0]) + abs(a[1] - b[1]) for i, a in enumerate(spots) for b in spots[i + 1 :]]
    assert len(points) == 4
    assert min(gaps) > 1e-3


@pytest.mark.parametrize("acquisition", ["logei", "ei", "ucb"])
def test_it_handles_int_and_categorical_dimensions_without_duplicates(mixed_space, acquisition):
    # given a space of 2 x 4 x many points
    generator = BayesianGenerator(mixed_space, seed=2, options={"acquisition": acquisition})

    def loss(p):
        return (p["layers"] - 3) ** 2 + (0.0 if p["act"] == "tanh" else 1.0) + abs(p["lr"] - 0.01)

    # when
    history = run_study(generator, loss, max_points=16, batch=4)

    # then
    points = [p for p, _ in history]
    assert len(history) == 16
    assert len({mixed_space.key(p) for p in points}) == 16
    assert all(isinstance(p["layers"], int) and p["act"] in ("relu", "tanh") for p in points)
    assert min(loss for _, loss in history) < 1.0


def test_it_proposes_every_free_point_of_a_small_space_and_then_ends(tiny_space):
    # when
    history = run_study(BayesianGenerator(tiny_space, seed=4), lambda p: p["n"], max_points=100, batch=2)

    # then
    assert len({tiny_space.key(p) for p, _ in history}) == 6
    assert len(history) == 6


def test_it_returns_nothing_once_the_budget_is_used():
    # given
    space = parse_space(SQUARE)
    history = [({"x": 0.1 * i, "y": 0.5}, float(i)) for i in range(5)]

    # when / then
    assert BayesianGenerator(space, seed=0).generate(history, 3, 5) == []


def test_it_refuses_an_unknown_acquisition():
    # when / then
    with pytest.raises(ValueError, match="acquisition"):
        BayesianGenerator(parse_space(SQUARE), options={"acquisition": "pi"})
