from __future__ import annotations

from hpo.generators.random import RandomGenerator
from tests.hpo.conftest import run_study


def test_it_returns_the_same_points_for_the_same_seed_and_history(mixed_space):
    # given
    history = [({"lr": 0.01, "layers": 2, "act": "relu"}, 0.5)]

    # when
    first = RandomGenerator(mixed_space, seed=7).generate(history, 5, 100)
    again = RandomGenerator(mixed_space, seed=7).generate(history, 5, 100)
    other = RandomGenerator(mixed_space, seed=8).generate(history, 5, 100)

    # then
    assert first == again
    assert first != other


def test_it_stays_inside_the_space(mixed_space):
    # when
    points = RandomGenerator(mixed_space, seed=1).generate([], 50, 100)

    # then
    for point in points:
        assert mixed_space.validate_point(point) == point


def test_it_never_repeats_a_pending_or_evaluated_point_and_ends_when_the_space_is_used_up(tiny_space):
    # given four of six points known, one of them still pending
    generator = RandomGenerator(tiny_space, seed=3)
    history = [(p, 1.0) for p in generator.generate([], 3, 100)]
    history += [(p, None) for p in generator.generate(history, 1, 100)]

    # when
    rest = generator.generate(history, 10, 100)
    after = generator.generate(history + [(p, None) for p in rest], 10, 100)

    # then
    keys = [tiny_space.key(p) for p, _ in history] + [tiny_space.key(p) for p in rest]
    assert len(rest) == 2
    assert len(set(keys)) == 6
    assert after == []


def test_it_respects_num_points_and_max_points_then_returns_nothing(mixed_space):
    # when
    history = run_study(RandomGenerator(mixed_space, seed=0), lambda p: p["lr"], max_points=7, batch=3)

    # then
    assert len(history) == 7
    assert RandomGenerator(mixed_space, seed=0).generate(history, 3, 7) == []
