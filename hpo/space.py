"""The HPO search space: parse every accepted form, validate it, and map points to and from the unit cube.

Three request forms are accepted (docs/idds-reference.md §3 plus a native one); all become one ``SearchSpace``.

1. Bounds form (the original bayesian generator's)::

       {"lr": [0.0001, 0.1], "dropout": [0.0, 0.5]}

   Every dimension is a continuous float in ``[low, high]`` (as in iDDS, even when both bounds are ints).

2. Nevergrad-style typed form::

       {"lr":     {"type": "Log", "params": {"lower": 1e-4, "upper": 1e-1}},
        "units":  {"type": "Scalar", "bounds": [8, 256], "params": {"integer": true}},
        "act":    {"type": "Choice", "params": {"choices": ["relu", "tanh"]}},
        "depth":  {"type": "TransitionChoice", "params": {"choices": [1, 2, 3, 4]}},
        "w":      {"type": "Array", "params": {"shape": [3]}, "bounds": [-1, 1]}}

   ``bounds`` and ``params.lower``/``params.upper`` are interchangeable. ``TransitionChoice`` is an ordered
   choice; ``Array`` is a vector of floats whose value is a JSON list.

3. Native form, a dict or a list of named parameters::

       {"lr":    {"type": "float", "low": 1e-4, "high": 0.1, "log": true},
        "units": {"type": "int", "low": 8, "high": 256},
        "act":   {"type": "categorical", "choices": ["relu", "tanh"]},
        "depth": {"type": "ordinal", "choices": [1, 2, 3, 4]}}
       [{"name": "lr", "type": "float", "low": 1e-4, "high": 0.1, "log": true}, ...]

Every problem raises ``WorkTypeValidationError`` keyed ``opt_space.<param>`` (or ``opt_space``) with what is
wrong and how to fix it, so the REST layer answers 400 naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
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

_NEVERGRAD_TYPES = ("Choice", "TransitionChoice", "Scalar", "Log", "Array")
_NATIVE_TYPES = ("float", "int", "categorical", "ordinal")

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
            if not _is_number(v):
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
                parts.append(float(f"{v:.12g}") if _is_number(v) else repr(v))
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


# --- parsing -------------------------------------------------------------------------------------------------


def parse_space(
    raw: Any, *, max_dimensions: int = MAX_DIMENSIONS, max_choices: int = MAX_CHOICES, field_name: str = "opt_space"
) -> SearchSpace:
    """Parse ``raw`` in any accepted form, or raise ``WorkTypeValidationError`` naming the faulty parameter."""
    entries = _named_entries(raw, field_name)
    params = [_parse_param(name, spec, f"{field_name}.{name}", max_choices) for name, spec in entries]
    dimensions = sum(p.size for p in params)
    if dimensions > max_dimensions:
        raise WorkTypeValidationError(
            {field_name: f"{dimensions} dimensions is more than the limit of {max_dimensions}; reduce the space"}
        )
    return SearchSpace(params=params, source=raw)


def _named_entries(raw: Any, field_name: str) -> list[tuple[str, Any]]:
    """(name, spec) pairs of either the dict or the list form, refusing empty spaces and duplicate names."""
    if isinstance(raw, Mapping):
        entries = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(item, Mapping) for item in raw):
        entries = []
        for i, item in enumerate(raw):
            name = item.get("name")
            if not isinstance(name, str):
                raise WorkTypeValidationError({f"{field_name}[{i}]": 'each entry of the list form needs a "name"'})
            entries.append((name, {k: v for k, v in item.items() if k != "name"}))
    else:
        raise WorkTypeValidationError(
            {field_name: 'expected an object such as {"lr": [0.0001, 0.1]} or a list of {"name": ..., "type": ...}'}
        )
    if not entries:
        raise WorkTypeValidationError({field_name: "the search space is empty; give at least one parameter"})
    seen: set[str] = set()
    for name, _ in entries:
        if not isinstance(name, str) or not name.strip():
            raise WorkTypeValidationError({field_name: f"parameter name {name!r} must be a non-empty string"})
        if name in seen:
            raise WorkTypeValidationError({f"{field_name}.{name}": "duplicate parameter name; names must be unique"})
        seen.add(name)
    return entries


def _parse_param(name: str, spec: Any, where: str, max_choices: int) -> Param:
    if isinstance(spec, (list, tuple)):
        if len(spec) != 2:
            raise WorkTypeValidationError(
                {
                    where: f'expected [low, high], got {len(spec)} values; for choices use {{"type": "categorical", '
                    '"choices": [...]}'
                }
            )
        low, high = _bounds(spec, where)
        return Param(name=name, kind=FLOAT, low=low, high=high)
    if not isinstance(spec, Mapping):
        raise WorkTypeValidationError({where: f'expected [low, high] or an object with a "type", got {spec!r}'})
    kind = spec.get("type")
    if kind in _NEVERGRAD_TYPES:
        return _parse_nevergrad(name, spec, where, max_choices)
    if isinstance(kind, str) and kind.lower() in _NATIVE_TYPES:
        return _parse_native(name, spec, where, max_choices)
    raise WorkTypeValidationError(
        {where: f"unknown type {kind!r}; use one of {list(_NATIVE_TYPES)} or nevergrad's {list(_NEVERGRAD_TYPES)}"}
    )


def _parse_native(name: str, spec: Mapping[str, Any], where: str, max_choices: int) -> Param:
    kind = spec["type"].lower()
    if kind in (CATEGORICAL, ORDINAL):
        return Param(name=name, kind=kind, choices=_choices(spec.get("choices"), where, max_choices))
    low, high = _bounds([spec.get("low"), spec.get("high")], where, names=("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise WorkTypeValidationError({f"{where}.log": "must be true or false"})
    if kind == INT:
        low, high = _int_bounds(low, high, where)
    if log and low <= 0:
        raise WorkTypeValidationError({where: f"log scale needs low > 0, got low={low}"})
    return Param(name=name, kind=kind, low=low, high=high, log=log)


def _parse_nevergrad(name: str, spec: Mapping[str, Any], where: str, max_choices: int) -> Param:
    kind = spec["type"]
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise WorkTypeValidationError({f"{where}.params": "must be an object"})
    if kind in ("Choice", "TransitionChoice"):
        choices = _choices(params.get("choices", spec.get("choices")), where, max_choices)
        return Param(name=name, kind=CATEGORICAL if kind == "Choice" else ORDINAL, choices=choices)
    if "bounds" in spec:
        bounds = spec["bounds"]
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise WorkTypeValidationError({f"{where}.bounds": "expected [low, high]"})
        low, high = _bounds(bounds, where)
    else:
        low, high = _bounds([params.get("lower"), params.get("upper")], where, names=("params.lower", "params.upper"))
    if kind == "Log":
        if low <= 0:
            raise WorkTypeValidationError({where: f"a Log parameter needs a lower bound > 0, got {low}"})
        return Param(name=name, kind=FLOAT, low=low, high=high, log=True)
    integer = params.get("integer", False)
    if kind == "Scalar":
        if integer:
            low, high = _int_bounds(low, high, where)
            return Param(name=name, kind=INT, low=low, high=high)
        return Param(name=name, kind=FLOAT, low=low, high=high)
    # Array: a 1-D vector of floats in the same bounds.
    shape = params.get("shape", [1])
    size = shape[0] if isinstance(shape, list) and len(shape) == 1 else shape
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise WorkTypeValidationError({f"{where}.params.shape": "expected a positive integer or [n] (1-D arrays only)"})
    return Param(name=name, kind=FLOAT, low=low, high=high, size=size, is_array=True)


def _choices(raw: Any, where: str, max_choices: int) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not raw:
        raise WorkTypeValidationError({where: 'needs a non-empty list "choices"'})
    if len(raw) > max_choices:
        raise WorkTypeValidationError({where: f"{len(raw)} choices is more than the limit of {max_choices}"})
    for choice in raw:
        if not isinstance(choice, (str, int, float, bool)) and choice is not None:
            raise WorkTypeValidationError({where: f"choice {choice!r} is not a string, number, boolean or null"})
    keys = [repr(c) if not _is_number(c) else float(c) for c in raw]
    if len(set(keys)) != len(keys):
        raise WorkTypeValidationError({where: "choices contain duplicates; list each value once"})
    return tuple(raw)


def _bounds(values: Iterable[Any], where: str, names: tuple[str, str] = ("low", "high")) -> tuple[float, float]:
    low, high = values
    for label, value in zip(names, (low, high), strict=True):
        if not _is_number(value):
            raise WorkTypeValidationError({where: f"{label} must be a finite number, got {value!r}"})
    if low >= high:
        raise WorkTypeValidationError({where: f"low ({low}) must be less than high ({high})"})
    return low, high


def _int_bounds(low: float, high: float, where: str) -> tuple[int, int]:
    if float(low) != int(low) or float(high) != int(high):
        raise WorkTypeValidationError({where: f"integer bounds must be whole numbers, got [{low}, {high}]"})
    return int(low), int(high)


def _is_number(value: Any) -> bool:
    """A finite int or float that fits a double (the generators compute in floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        # An integer of hundreds of digits: exact in Python, infinite as a double.
        return False
