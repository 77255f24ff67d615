"""The minimum-distance rule: no two points of a study closer than a fraction of every parameter's range.

Distances are taken in the unit cube of the encoded space (``SearchSpace.encode``), where every parameter's
range (in log space for log parameters) has length 1, with the Chebyshev (max) norm: two points are too close
when they differ by less than ``min_distance`` in *every* column. Points differing in a category or in an
integer of a small range are always far enough apart. Exact repeats are refused by key as well, so
``min_distance = 0`` still forbids duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hpo.space import Point, SearchSpace

#: Moves ``nearest_allowed`` tries before giving up (each clears one exclusion box).
REPAIR_MOVES = 8


class PointSpacing:
    """The points a study already holds (evaluated, pending, proposed in this generation) and the rule."""

    def __init__(self, space: SearchSpace, points: Iterable[Point], min_distance: float) -> None:
        self.space = space
        self.min_distance = float(min_distance)
        self._keys: set[tuple] = set()
        rows: list[np.ndarray] = []
        for point in points:
            self._keys.add(space.key(point))
            rows.append(space.encode(point))
        self._cube = np.array(rows, dtype=float).reshape(len(rows), space.cube_dim)
        self._count = len(rows)

    def __len__(self) -> int:
        return len(self._keys)

    def too_close(self, x: np.ndarray) -> bool:
        """Whether the cube vector ``x`` lies within ``min_distance`` of a held point in every column."""
        if self._count == 0 or self.min_distance <= 0.0:
            return False
        gaps = np.abs(self._cube[: self._count] - x).max(axis=1)
        return bool(gaps.min() < self.min_distance)

    def refuses(self, point: Point) -> bool:
        """Whether ``point`` repeats a held point or sits too close to one."""
        return self.space.key(point) in self._keys or self.too_close(self.space.encode(point))

    def refuses_cube(self, x: np.ndarray) -> bool:
        """``refuses`` for a (snapped) cube vector."""
        return self.refuses(self.space.decode(x))

    def nearest_allowed(self, x: np.ndarray) -> np.ndarray | None:
        """``x`` moved just outside the exclusion boxes it falls in, or None if a few moves do not free it.

        Each move pushes the column where ``x`` is furthest from the blocking point out to ``min_distance`` from
        it: the smallest move that clears that box. When the acquisition's optimum sits next to an earlier
        point (refining an optimum), this keeps the proposal as near the optimum as the rule allows instead of
        falling back to a far, worse candidate.
        """
        y = np.array(x, dtype=float)
        step = self.min_distance * (1.0 + 1e-6)
        for _ in range(REPAIR_MOVES):
            if self._count == 0 or self.min_distance <= 0.0:
                return y
            diff = y - self._cube[: self._count]
            gaps = np.abs(diff).max(axis=1)
            blocking = np.flatnonzero(gaps < self.min_distance)
            if len(blocking) == 0:
                return y
            row = blocking[np.argmin(gaps[blocking])]
            column = int(np.argmax(np.abs(diff[row])))
            direction = 1.0 if diff[row, column] >= 0 else -1.0
            moved = self._cube[row, column] + direction * step
            # At the edge of the cube, clear the box on its other side.
            y[column] = moved if 0.0 <= moved <= 1.0 else self._cube[row, column] - direction * step
        return None

    def add(self, point: Point) -> None:
        """Hold ``point`` from now on."""
        self._keys.add(self.space.key(point))
        if self._count == len(self._cube):
            # Amortised growth: a generation adds a handful of rows to a possibly large history.
            grown = np.empty((max(2 * len(self._cube), 8), self.space.cube_dim))
            grown[: self._count] = self._cube[: self._count]
            self._cube = grown
        self._cube[self._count] = self.space.encode(point)
        self._count += 1
