from __future__ import annotations

from collections.abc import Callable

import pytest

from hpo.generators.base import Generator
from hpo.space import Point, SearchSpace
from hpo.space_forms import parse_space

Objective = Callable[[Point], float]


def run_study(generator: Generator, objective: Objective, *, max_points: int, batch: int = 1) -> list:
    """Ask and tell like a study does until the generator returns [] or the budget is used."""
    history: list[tuple[Point, float | None]] = []
    while True:
        points = generator.generate(history, batch, max_points)
        if not points:
            return history
        history.extend((p, objective(p)) for p in points)


@pytest.fixture
def mixed_space() -> SearchSpace:
    return parse_space(
        {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "layers": {"type": "int", "low": 1, "high": 4},
            "act": {"type": "categorical", "choices": ["relu", "tanh"]},
        }
    )


@pytest.fixture
def tiny_space() -> SearchSpace:
    """Six points in all."""
    return parse_space(
        {"n": {"type": "int", "low": 1, "high": 3}, "act": {"type": "Choice", "params": {"choices": ["a", "b"]}}}
    )


def quadratic(point: Point) -> float:
    """Minimum 0 at x = 0.3, y = 0.7."""
    return (point["x"] - 0.3) ** 2 + (point["y"] - 0.7) ** 2
