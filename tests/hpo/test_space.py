from __future__ import annotations

import numpy as np
import pytest

from hpo.space_forms import parse_space
from requests_app.errors import WorkTypeValidationError

MIXED = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "units": {"type": "int", "low": 8, "high": 256},
    "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu"]},
    "depth": {"type": "ordinal", "choices": [1, 2, 4]},
}


def test_it_reads_the_bounds_form_as_float_ranges():
    # given
    raw = {"lr": [0.0001, 0.1], "dropout": [0, 1]}

    # when
    space = parse_space(raw)

    # then
    assert space.to_native() == {
        "lr": {"type": "float", "low": 0.0001, "high": 0.1},
        "dropout": {"type": "float", "low": 0, "high": 1},
    }


def test_it_reads_every_nevergrad_type():
    # given
    raw = {
        "a": {"type": "Choice", "params": {"choices": ["x", "y"]}},
        "b": {"type": "TransitionChoice", "params": {"choices": [1, 2, 3]}},
        "c": {"type": "Scalar", "bounds": [0, 5]},
        "d": {"type": "Scalar", "params": {"lower": 1, "upper": 9, "integer": True}},
        "e": {"type": "Log", "params": {"lower": 1e-5, "upper": 1}},
        "f": {"type": "Array", "params": {"shape": [3]}, "bounds": [-1, 1]},
    }

    # when
    native = parse_space(raw).to_native()

    # then
    assert native == {
        "a": {"type": "categorical", "choices": ["x", "y"]},
        "b": {"type": "ordinal", "choices": [1, 2, 3]},
        "c": {"type": "float", "low": 0, "high": 5},
        "d": {"type": "int", "low": 1, "high": 9},
        "e": {"type": "float", "low": 1e-5, "high": 1, "log": True},
        "f": {"type": "float", "low": -1, "high": 1, "size": 3},
    }


def test_it_reads_the_native_list_form_like_the_dict_form():
    # given
    as_list = [{"name": name, **spec} for name, spec in MIXED.items()]

    # when
    space = parse_space(as_list)

    # then
    assert space.to_native() == parse_space(MIXED).to_native()


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({}, "opt_space", "empty"),
        ([], "opt_space", "empty"),
        ({"lr": [0.1, 0.1]}, "opt_space.lr", "less than"),
        ({"lr": [0.5, 0.1]}, "opt_space.lr", "less than"),
        ({"lr": [0, "x"]}, "opt_space.lr", "finite number"),
        ({"lr": [0, float("nan")]}, "opt_space.lr", "finite number"),
        ({"lr": [True, 2]}, "opt_space.lr", "finite number"),
        ({"lr": [0, 1, 2]}, "opt_space.lr", "[low, high]"),
        ({"lr": {"type": "Gaussian"}}, "opt_space.lr", "unknown type"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "opt_space.lr", "low > 0"),
        ({"n": {"type": "int", "low": 0.5, "high": 3}}, "opt_space.n", "whole numbers"),
        ({"c": {"type": "categorical", "choices": []}}, "opt_space.c", "non-empty"),
        ({"c": {"type": "categorical", "choices": [1, 1.0]}}, "opt_space.c", "duplicates"),
        ({"c": {"type": "Choice", "params": {"choices": list(range(10_001))}}}, "opt_space.c", "limit of 10000"),
        ({f"x{i}": [0, 1] for i in range(101)}, "opt_space", "limit of 100"),
        ({"w": {"type": "Array", "params": {"shape": [101]}, "bounds": [0, 1]}}, "opt_space", "limit of 100"),
        (
            [{"name": "a", "type": "float", "low": 0, "high": 1}, {"name": "a", "type": "int", "low": 0, "high": 3}],
            "opt_space.a",
            "duplicate",
        ),
        ("lr", "opt_space", "expected an object"),
    ],
)
def test_it_names_the_parameter_and_the_problem_of_a_bad_space(raw, field, words):
    # given a malformed space
    # when
    with pytest.raises(WorkTypeValidationError) as caught:
        parse_space(raw)

    # then
    assert field in caught.value.errors
    assert words in caught.value.errors[field]


def test_it_applies_configured_limits():
    # given
    raw = {"a": [0, 1], "b": [0, 1], "c": {"type": "categorical", "choices": [1, 2, 3]}}

    # when / then
    with pytest.raises(WorkTypeValidationError, match="limit of 2"):
        parse_space(raw, max_dimensions=2)
    with pytest.raises(WorkTypeValidationError, match="limit of 2"):
        parse_space({"c": raw["c"]}, max_choices=2)


def test_it_round_trips_points_through_the_unit_cube():
    # given
    space = parse_space({**MIXED, "w": {"type": "Array", "params": {"shape": [2]}, "bounds": [-1, 1]}})
    points = space.sample(np.random.default_rng(0), 50)

    # when
    encoded = [space.encode(p) for p in points]

    # then
    assert all(((x >= 0) & (x <= 1)).all() for x in encoded)
    for point, x in zip(points, encoded, strict=True):
        decoded = space.decode(x)
        assert space.key(decoded) == space.key(point)
        assert isinstance(decoded["units"], int)
        assert decoded["act"] in ("relu", "tanh", "gelu")
        assert len(decoded["w"]) == 2


def test_it_samples_log_parameters_uniformly_in_log_space():
    # given
    space = parse_space({"lr": {"type": "float", "low": 1e-6, "high": 1.0, "log": True}})

    # when
    values = np.array([p["lr"] for p in space.sample(np.random.default_rng(1), 4000)])

    # then about half the draws fall below the geometric midpoint 1e-3
    assert 0.45 < (values < 1e-3).mean() < 0.55


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ({"lr": 0.01, "units": 8, "act": "relu"}, "point"),
        ({"lr": 0.01, "units": 8, "act": "relu", "depth": 1, "extra": 1}, "point"),
        ({"lr": 0.5, "units": 8, "act": "relu", "depth": 1}, "point.lr"),
        ({"lr": 0.01, "units": 8.5, "act": "relu", "depth": 1}, "point.units"),
        ({"lr": 0.01, "units": 8, "act": "selu", "depth": 1}, "point.act"),
        ({"lr": 0.01, "units": 8, "act": "relu", "depth": True}, "point.depth"),
    ],
)
def test_it_refuses_points_outside_the_space(point, field):
    # given
    space = parse_space(MIXED)

    # when
    with pytest.raises(WorkTypeValidationError) as caught:
        space.validate_point(point)

    # then
    assert field in caught.value.errors
