"""Uniform random search (log-scale parameters uniform in log space)."""

from __future__ import annotations

import itertools
from typing import ClassVar

from hpo.generators.base import Generator, History
from hpo.space import Point

#: Discrete spaces up to this many points are enumerated, so the last free points are found for sure.
ENUMERATE_MAX_POINTS = 100_000
#: Draws per wanted point in large spaces (a duplicate there is rare, so this never runs dry in practice).
_DRAWS_PER_POINT = 50


class RandomGenerator(Generator):
    """Independent uniform draws; returns ``[]`` once a finite space is used up."""

    name = "random"
    version = "1"
    default_options: ClassVar[dict] = {}

    def generate(self, history: History, num_points: int, max_points: int) -> list[Point]:
        """Up to the budget's worth of new random points, none already in ``history``."""
        wanted = self.budget(history, num_points, max_points)
        taken = self.taken_keys(history)
        rng = self.rng(history)
        if self.space.cardinality <= ENUMERATE_MAX_POINTS:
            axes = self.space.grid_values(levels=ENUMERATE_MAX_POINTS)
            free = [
                p for p in map(self.space.point_from_axes, itertools.product(*axes)) if self.space.key(p) not in taken
            ]
            picks = rng.permutation(len(free))[:wanted]
            return [free[i] for i in picks]
        points: list[Point] = []
        for candidate in self.space.sample(rng, wanted * _DRAWS_PER_POINT):
            key = self.space.key(candidate)
            if key not in taken:
                taken.add(key)
                points.append(candidate)
            if len(points) == wanted:
                break
        return points
