"""Grid search: every combination of per-axis values, visited in a seeded shuffled order."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from hpo.generators.base import Generator, History
from hpo.space import Point

#: Grids up to this size are visited in a shuffled order (the permutation costs ~8 bytes per cell); larger
#: ones lexicographically, which covers a corner first but needs no memory.
SHUFFLE_MAX_CELLS = 1_000_000


class GridGenerator(Generator):
    """Walks the grid skipping points the study already has; ``[]`` when the grid is exhausted.

    Options: ``levels`` — steps per continuous axis (default: the largest count whose full grid fits in
    ``max_points``, at least 2); ``shuffle`` — visit cells in a seeded random order (default true) so that a
    budget smaller than the grid still spreads over the whole space.
    """

    name = "grid"
    version = "1"
    default_options: ClassVar[dict[str, Any]] = {"levels": None, "shuffle": True}

    def _levels(self, max_points: int) -> int:
        if self.options["levels"]:
            return int(self.options["levels"])
        continuous_axes = sum(p.size for p in self.space.params if p.kind in ("float", "int"))
        if continuous_axes == 0:
            return 2
        discrete = math.prod(len(p.choices) for p in self.space.params if p.choices)
        per_axis = (max(max_points, 1) / discrete) ** (1 / continuous_axes)
        return max(2, int(per_axis + 1e-9))

    def _cells(self, axes: list[list[Any]]) -> Iterator[tuple[Any, ...]]:
        shape = [len(a) for a in axes]
        total = math.prod(shape)
        if self.options["shuffle"] and total <= SHUFFLE_MAX_CELLS:
            # The order depends on the seed only, so every generation walks the same sequence.
            order = np.random.default_rng(self.seed).permutation(total)
        else:
            order = range(total)
        for flat in order:
            index = np.unravel_index(int(flat), shape)
            yield tuple(axis[i] for axis, i in zip(axes, index, strict=True))

    def generate(self, history: History, num_points: int, max_points: int) -> list[Point]:
        """The next unvisited grid points, up to the budget."""
        wanted = self.budget(history, num_points, max_points)
        if wanted == 0:
            return []
        taken = self.taken_keys(history)
        points: list[Point] = []
        for row in self._cells(self.space.grid_values(self._levels(max_points))):
            point = self.space.point_from_axes(row)
            key = self.space.key(point)
            if key in taken:
                continue
            taken.add(key)
            points.append(point)
            if len(points) == wanted:
                break
        return points
