from __future__ import annotations

import pytest

from hpo.generators.grid import GridGenerator
from hpo.space_forms import parse_space
from tests.hpo.conftest import run_study


def test_it_visits_every_cell_once_and_then_ends(tiny_space):
    # when
    history = run_study(GridGenerator(tiny_space, seed=1), lambda p: p["n"], max_points=100, batch=4)

    # then
    assert sorted((p["n"], p["act"]) for p, _ in history) == [(n, a) for n in (1, 2, 3) for a in ("a", "b")]


def test_it_spaces_log_parameters_geometrically():
    # given
    space = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}})

    # when
    points = GridGenerator(space, seed=0, options={"levels": 5, "shuffle": False}).generate([], 10, 100)

    # then
    assert [p["lr"] for p in points] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_it_skips_pending_points(tiny_space):
    # given
    generator = GridGenerator(tiny_space, seed=2)
    first = generator.generate([], 2, 100)

    # when
    second = generator.generate([(first[0], 0.1), (first[1], None)], 2, 100)

    # then
    assert not {tiny_space.key(p) for p in first} & {tiny_space.key(p) for p in second}


def test_it_is_reproducible_and_fits_the_grid_to_the_budget():
    # given
    space = parse_space({"x": [0, 1], "y": [0, 1]})

    # when
    first = GridGenerator(space, seed=5).generate([], 100, 16)
    again = GridGenerator(space, seed=5).generate([], 100, 16)

    # then a 4 x 4 grid fills the 16-point budget exactly
    assert first == again
    assert len(first) == 16
    assert sorted({p["x"] for p in first}) == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_it_refuses_unknown_options(tiny_space):
    # when / then
    with pytest.raises(ValueError, match="unknown option"):
        GridGenerator(tiny_space, options={"step": 3})
