"""The HPO search space: its parameters, validation of points, and the map to and from the unit cube.

``hpo.space_forms.parse_space`` builds a ``SearchSpace`` from any accepted request form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from requests_app.errors import WorkTypeValidationError

#: Refuse spaces with more dimensions than this (array elements count one each): generators scale badly beyond.
MAX_DIMENSIONS = 100
#: Refuse categorical/ordinal parameters with more choices than this.
MAX_CHOICES = 10_000
#: Unordered choices up to this count are one-hot encoded in the cube; more use an ordinal axis (one-hot of
#: thousands of columns would swamp a GP).
ONE_HOT_MAX_CHOICES = 16

FLOAT = "float"
INT = "int"
CATEGORICAL = "categorical"
ORDINAL = "ordinal"
KINDS = (FLOAT, INT, CATEGORICAL, ORDINAL)


Point = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One named parameter of the space; ``size`` > 1 makes it a vector (nevergrad ``Array``)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    size: int = 1
    # Scalars stay scalars; an Array of shape [1] is still a list on the wire.
    is_array: bool = False

    @property
    def cube_width(self) -> int:
        """Number of unit-cube columns this parameter takes."""
        if self.kind == CATEGORICAL and len(self.choices) <= ONE_HOT_MAX_CHOICES:
            return len(self.choices)
        return self.size

    @property
    def cardinality(self) -> float:
        """Number of distinct values (``inf`` for continuous parameters)."""
        if self.kind in (CATEGORICAL, ORDINAL):
            return float(len(self.choices))
        if self.kind == INT:
            return float(int(self.high) - int(self.low) + 1) ** self.size
        return math.inf

    def to_native(self) -> dict[str, Any]:
        """The canonical native-form description (what generator programs receive)."""
        out: dict[str, Any] = {"type": self.kind}
        if self.kind in (FLOAT, INT):
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
        else:
            out["choices"] = list(self.choices)
        if self.is_array:
            out["size"] = self.size
        return out

    # --- unit cube -------------------------------------------------------------------------------------------

    def _scalar_to_unit(self, value: Any) -> float:
        if self.kind == FLOAT:
            if self.log:
                return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
            return (value - self.low) / (self.high - self.low)
        if self.kind == INT:
            # Each integer owns an equal-width cell, so rounding the decoded value is unbiased.
            return (int(value) - self.low + 0.5) / (self.high - self.low + 1)
        index = self.index_of(value)
        return (index + 0.5) / len(self.choices)

    def _scalar_from_unit(self, u: float) -> Any:
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == FLOAT:
            if self.log:
                value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            else:
                value = self.low + u * (self.high - self.low)
            return min(max(value, self.low), self.high)
        if self.kind == INT:
            count = int(self.high) - int(self.low) + 1
            return int(self.low) + min(int(u * count), count - 1)
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def index_of(self, value: Any) -> int:
        """Index of ``value`` among the choices (numbers compare by value: 1 == 1.0)."""
        for i, choice in enumerate(self.choices):
            # JSON true must not match the choice 1 (Python says True == 1).
            if isinstance(choice, bool) == isinstance(value, bool) and choice == value:
                return i
        raise ValueError(f"{value!r} is not one of the choices of {self.name}")

    def encode(self, value: Any) -> list[float]:
        """The cube columns of ``value``."""
        if self.kind == CATEGORICAL and self.cube_width == len(self.choices):
            columns = [0.0] * len(self.choices)
            columns[self.index_of(value)] = 1.0
            return columns
        values = value if self.is_array else [value]
        return [self._scalar_to_unit(v) for v in values]

    def decode(self, columns: Sequence[float]) -> Any:
        """The value at these cube columns (categorical one-hot: the largest column wins)."""
        if self.kind == CATEGORICAL and self.cube_width == len(self.choices):
            return self.choices[int(np.argmax(columns))]
        values = [self._scalar_from_unit(u) for u in columns]
        return values if self.is_array else values[0]

    def check_value(self, value: Any) -> str | None:
        """Why ``value`` is not a valid value of this parameter, or None."""
        values = value if self.is_array else [value]
        if self.is_array and (not isinstance(value, list) or len(value) != self.size):
            return f"expected a list of {self.size} numbers"
        for v in values:
            if self.kind in (CATEGORICAL, ORDINAL):
                try:
                    self.index_of(v)
                except ValueError:
                    return f"{v!r} is not one of {list(self.choices)[:10]}"
                continue
            if not is_number(v):
                return f"{v!r} is not a number"
            if self.kind == INT and float(v) != int(v):
                return f"{v!r} is not an integer"
            if not self.low <= v <= self.high:
                return f"{v!r} is outside [{self.low}, {self.high}]"
        return None


@dataclass
class SearchSpace:
    """An ordered set of parameters with point validation and the unit-cube encoding used by the GP."""

    params: list[Param]
    source: Any = field(default=None, compare=False)

    @property
    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.params]

    @property
    def cube_dim(self) -> int:
        """Number of unit-cube columns."""
        return sum(p.cube_width for p in self.params)

    @property
    def cardinality(self) -> float:
        """Number of distinct points (``inf`` when a parameter is continuous)."""
        return math.prod(p.cardinality for p in self.params)

    def to_native(self) -> dict[str, dict[str, Any]]:
        """The canonical native form, JSON-ready."""
        return {p.name: p.to_native() for p in self.params}

    def encode(self, point: Mapping[str, Any]) -> np.ndarray:
        """Map a point to the unit cube."""
        columns: list[float] = []
        for p in self.params:
            columns.extend(p.encode(point[p.name]))
        return np.asarray(columns, dtype=float)

    def decode(self, x: Sequence[float]) -> Point:
        """Map a unit-cube vector to a point (rounding ints and picking choices)."""
        point: Point = {}
        start = 0
        for p in self.params:
            point[p.name] = p.decode(x[start : start + p.cube_width])
            start += p.cube_width
        return point

    def snap(self, x: np.ndarray) -> np.ndarray:
        """Move a cube vector onto the cube image of its decoded point (what will really be evaluated)."""
        return self.encode(self.decode(x))

    def key(self, point: Mapping[str, Any]) -> tuple:
        """A hashable identity of a point for duplicate detection (floats compared to 12 significant digits)."""
        parts: list[Any] = []
        for p in self.params:
            value = point.get(p.name)
            values = value if isinstance(value, list) else [value]
            for v in values:
                parts.append(float(f"{v:.12g}") if is_number(v) else repr(v))
        return tuple(parts)

    def validate_point(self, point: Any, *, field_name: str = "point") -> Point:
        """Check a point from outside (initial points, a generator program) and return it with known keys only."""
        if not isinstance(point, Mapping):
            raise WorkTypeValidationError({field_name: f"expected an object of parameter values, got {point!r}"})
        missing = [n for n in self.names if n not in point]
        unknown = [n for n in point if n not in self.names]
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"missing {missing}")
            if unknown:
                problems.append(f"unknown {unknown}")
            raise WorkTypeValidationError(
                {field_name: f"{', '.join(problems)}; a point needs exactly the parameters {self.names}"}
            )
        for p in self.params:
            problem = p.check_value(point[p.name])
            if problem:
                raise WorkTypeValidationError({f"{field_name}.{p.name}": problem})
        return {p.name: point[p.name] for p in self.params}

    def grid_values(self, levels: int) -> list[list[Any]]:
        """Per parameter, the values a grid of ``levels`` steps per continuous axis visits (arrays: per element)."""
        axes: list[list[Any]] = []
        for p in self.params:
            if p.kind in (CATEGORICAL, ORDINAL):
                axes.append(list(p.choices))
                continue
            if p.kind == INT and p.high - p.low + 1 <= levels:
                values: list[Any] = list(range(int(p.low), int(p.high) + 1))
            elif p.kind == INT:
                values = sorted({int(round(v)) for v in np.linspace(p.low, p.high, levels)})
            elif p.log:
                values = [float(v) for v in np.geomspace(p.low, p.high, levels)]
            else:
                values = [float(v) for v in np.linspace(p.low, p.high, levels)]
            axes.extend([values] * p.size)
        return axes

    def point_from_axes(self, row: Sequence[Any]) -> Point:
        """Rebuild a point from one value per axis of ``grid_values`` (array elements regrouped)."""
        point: Point = {}
        start = 0
        for p in self.params:
            if p.is_array:
                point[p.name] = list(row[start : start + p.size])
                start += p.size
            else:
                point[p.name] = row[start]
                start += 1
        return point

    def sample(self, rng: np.random.Generator, n: int) -> list[Point]:
        """``n`` points drawn uniformly in the cube (log parameters are uniform in log space)."""
        return [self.decode(row) for row in rng.random((n, self.cube_dim))]


def is_number(value: Any) -> bool:
    """A finite int or float that fits a double (the generators compute in floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        # An integer of hundreds of digits: exact in Python, infinite as a double.
        return False
