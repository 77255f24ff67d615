from __future__ import annotations

import numpy as np
import pytest

from hpo.generators.bayesian import BayesianGenerator
from hpo.generators.spacing import PointSpacing
from hpo.generators.warping import transform_losses
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


def _cube_gaps(space, points):
    """Chebyshev distances in the unit cube between every pair of ``points``."""
    cube = np.array([space.encode(p) for p in points])
    gaps = np.abs(cube[:, None, :] - cube[None, :, :]).max(-1)
    return gaps[np.triu_indices(len(points), 1)]


def test_a_batch_keeps_the_minimum_distance_from_pending_and_earlier_points():
    # given a model-driven generation of ten points after five evaluated and three pending points
    space = parse_space(SQUARE)
    spots = [(0.1, 0.1), (0.9, 0.9), (0.2, 0.8), (0.6, 0.4), (0.31, 0.69)]
    history = [({"x": x, "y": y}, quadratic({"x": x, "y": y})) for x, y in spots]
    history += [({"x": 0.3, "y": 0.7}, None), ({"x": 0.3004, "y": 0.7}, None), ({"x": 0.29, "y": 0.71}, None)]

    # when
    points = BayesianGenerator(space, seed=5, options={"initial_design": 2}).generate(history, 10, 50)

    # then every new point is at least 1e-3 of a range away from every other point, old or new, in some column
    everything = [p for p, _ in history] + points
    gaps = _cube_gaps(space, everything)
    assert len(points) == 10
    new_pairs = _cube_gaps(space, points)
    assert new_pairs.min() >= 1e-3
    # the history's own close pair (0.3 vs 0.3004) is the only one below the rule
    assert (gaps < 1e-3).sum() == 1


def test_the_minimum_distance_option_spreads_a_batch_further():
    # given
    space = parse_space(SQUARE)
    history = [({"x": x, "y": y}, quadratic({"x": x, "y": y})) for x, y in [(0.1, 0.2), (0.8, 0.6), (0.35, 0.7)]]

    # when
    points = BayesianGenerator(space, seed=2, options={"initial_design": 2, "min_distance": 0.1}).generate(
        history, 5, 50
    )

    # then
    assert len(points) == 5
    assert _cube_gaps(space, [p for p, _ in history] + points).min() >= 0.1


def test_the_spacing_rule_refuses_near_repeats_and_accepts_points_apart_in_one_column():
    # given
    space = parse_space({"x": [0.0, 10.0], "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}})
    spacing = PointSpacing(space, [{"x": 5.0, "lr": 1e-3}], min_distance=1e-3)

    # when / then: 1e-3 of x's range is 0.01; lr's range is four decades in log space
    assert spacing.refuses({"x": 5.0, "lr": 1e-3})
    assert spacing.refuses({"x": 5.005, "lr": 1.0001e-3})
    assert not spacing.refuses({"x": 5.02, "lr": 1e-3})
    assert not spacing.refuses({"x": 5.0, "lr": 1.1e-3})
    spacing.add({"x": 5.02, "lr": 1e-3})
    assert spacing.refuses({"x": 5.021, "lr": 1e-3})


def test_power_warping_squeezes_a_loss_spanning_decades_and_keeps_the_order():
    # given losses from 1 to 10^4
    losses = np.logspace(0, 4, 30)

    # when
    warped = transform_losses(losses, "power")
    plain = transform_losses(losses, "standardize")

    # then the good end is spread out relative to the tail, and nothing changes order
    assert np.all(np.diff(warped) > 0)
    assert np.array_equal(plain, losses)
    raw_share = (losses[10] - losses[0]) / (losses[-1] - losses[0])
    warped_share = (warped[10] - warped[0]) / (warped[-1] - warped[0])
    assert warped_share > 10 * raw_share


def test_power_warping_leaves_gaussian_looking_losses_almost_alone():
    # given
    losses = np.random.default_rng(0).normal(5.0, 1.0, 40)

    # when
    warped = transform_losses(losses, "power")

    # then
    assert np.corrcoef(warped, losses)[0, 1] > 0.99


@pytest.mark.parametrize("transform", ["power", "standardize"])
def test_loss_warping_can_be_switched_off_and_both_settings_minimise(transform):
    # given a loss spanning orders of magnitude
    generator = BayesianGenerator(parse_space(SQUARE), seed=0, options={"output_transform": transform})

    def steep(point):
        return 10 ** (8 * quadratic(point))

    # when
    history = run_study(generator, steep, max_points=20, batch=2)

    # then
    assert generator.options["output_transform"] == transform
    assert min(loss for _, loss in history) < 1.2


def test_power_warping_is_the_default():
    # when / then
    assert BayesianGenerator(parse_space(SQUARE)).options["output_transform"] == "power"


def test_the_model_is_fitted_on_a_subsample_past_the_threshold():
    # given sixty evaluated and thirty pending points, and a threshold of twenty model points
    space = parse_space(SQUARE)
    rng = np.random.default_rng(0)
    evaluated = [({"x": float(x), "y": float(y)}, quadratic({"x": x, "y": y})) for x, y in rng.random((60, 2))]
    pending = [({"x": float(x), "y": float(y)}, None) for x, y in rng.random((30, 2))]
    history = evaluated + pending
    generator = BayesianGenerator(space, seed=0, options={"max_model_points": 20})

    # when
    modelled, fantasised = generator.model_subset(history, evaluated)
    points = generator.generate(history, 3, 200)

    # then the ten best are kept, ten of the rest are drawn, the five latest pending points are fantasised
    best_ten = sorted(loss for _, loss in evaluated)[:10]
    assert len(modelled) == 20
    assert sorted(loss for _, loss in modelled)[:10] == best_ten
    assert fantasised == [p for p, _ in pending[-5:]]
    assert len(points) == 3


def test_below_the_threshold_every_point_is_modelled():
    # given
    space = parse_space(SQUARE)
    evaluated = [({"x": 0.1 * i, "y": 0.5}, float(i)) for i in range(8)]

    # when
    modelled, fantasised = BayesianGenerator(space, options={"max_model_points": 20}).model_subset(evaluated, evaluated)

    # then
    assert modelled == evaluated
    assert fantasised == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"output_transform": "cube"}, "output_transform"),
        ({"min_distance": 0.7}, "min_distance"),
        ({"max_model_points": 3}, "max_model_points"),
        ({"batch_strategy": "liar"}, "batch_strategy"),
        ({"global_points": 0}, "global_points"),
        ({"global_points": 1.5}, "global_points"),
        ({"trust_half_width": 0.7}, "trust_half_width"),
    ],
)
def test_it_refuses_bad_options(options, message):
    # when / then
    with pytest.raises(ValueError, match=message):
        BayesianGenerator(parse_space(SQUARE), options=options)


def test_a_refused_point_is_moved_just_outside_the_exclusion_box():
    # given a held point in the middle of the square
    space = parse_space(SQUARE)
    spacing = PointSpacing(space, [{"x": 0.5, "y": 0.5}], min_distance=1e-3)

    # when
    moved = spacing.nearest_allowed(np.array([0.5004, 0.5001]))

    # then the column furthest from the held point is pushed to the box's edge, the other one stays
    assert moved is not None
    assert moved[0] == pytest.approx(0.501, abs=1e-8)
    assert moved[1] == pytest.approx(0.5001)
    assert not spacing.refuses({"x": float(moved[0]), "y": float(moved[1])})


@pytest.mark.parametrize("strategy", ["believer", "thompson", "fantasies", "local"])
def test_every_batch_strategy_keeps_a_batch_apart(strategy):
    # given five evaluated points around a quadratic's minimum and one pending point
    space = parse_space(SQUARE)
    spots = [(0.1, 0.1), (0.9, 0.9), (0.2, 0.8), (0.6, 0.4), (0.35, 0.65)]
    history = [({"x": x, "y": y}, quadratic({"x": x, "y": y})) for x, y in spots]
    history.append(({"x": 0.31, "y": 0.69}, None))

    # when
    options = {"initial_design": 2, "batch_strategy": strategy}
    points = BayesianGenerator(space, seed=4, options=options).generate(history, 5, 50)

    # then
    assert len(points) == 5
    assert _cube_gaps(space, [p for p, _ in history] + points).min() >= 1e-3


def _history_with_other_workers_pending():
    space = parse_space(SQUARE)
    spots = [(0.1, 0.1), (0.9, 0.9), (0.2, 0.8), (0.6, 0.4), (0.35, 0.65)]
    history = [({"x": x, "y": y}, quadratic({"x": x, "y": y})) for x, y in spots]
    history += [({"x": 0.8, "y": 0.2}, None), ({"x": 0.5, "y": 0.5}, None)]
    return space, history


def test_the_first_point_of_a_generation_is_global_even_with_other_workers_points_pending():
    # given two points pending on other workers
    space, history = _history_with_other_workers_pending()

    # when a generation of one point is asked with the default (local) and the global (believer) strategy
    local = BayesianGenerator(space, seed=6, options={"initial_design": 2}).generate(history, 1, 50)
    believer = BayesianGenerator(space, seed=6, options={"initial_design": 2, "batch_strategy": "believer"}).generate(
        history, 1, 50
    )

    # then both searched the whole square for it: the trust region is for the points that follow in a generation
    assert local == believer


def test_the_first_global_points_of_a_generation_search_the_whole_space():
    # given two points pending on other workers
    space, history = _history_with_other_workers_pending()

    # when generations of three points are asked with two global points (the default), and with every point global
    local = BayesianGenerator(space, seed=6, options={"initial_design": 2}).generate(history, 3, 50)
    believer = BayesianGenerator(space, seed=6, options={"initial_design": 2, "batch_strategy": "believer"}).generate(
        history, 3, 50
    )
    one_global = BayesianGenerator(space, seed=6, options={"initial_design": 2, "global_points": 1}).generate(
        history, 3, 50
    )

    # then the first two are the global ones; with one global point the second is already sought locally
    assert local[:2] == believer[:2]
    assert local[2] != believer[2]
    assert one_global[1] != believer[1]


def test_the_later_points_of_a_generation_refine_around_the_best_point():
    # given
    space, history = _history_with_other_workers_pending()
    best = np.array([0.35, 0.65])

    # when
    points = BayesianGenerator(space, seed=6, options={"initial_design": 2}).generate(history, 4, 50)

    # then the points after the two global ones lie in a box around the best evaluated point (half-width <= 0.5)
    later = np.array([space.encode(p) for p in points[2:]])
    assert len(points) == 4
    assert np.abs(later - best).max() <= 0.5


def test_the_trust_region_leaves_categories_free(mixed_space):
    # given a space with a log float, an int and a two-way category (one-hot columns)
    generator = BayesianGenerator(mixed_space, seed=0)
    acquisition = generator._optimizer([], PointSpacing(mixed_space, [], 1e-3)).acquisition_function

    # when
    columns = acquisition.whole_range_columns

    # then only the category's columns are left whole: a batch is not pinned to the incumbent's category
    assert columns.tolist() == [False, False, True, True]
