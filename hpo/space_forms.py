"""The request forms of an HPO search space, parsed into one ``hpo.space.SearchSpace``.

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

from collections.abc import Iterable, Mapping
from typing import Any

from hpo.space import CATEGORICAL, FLOAT, INT, MAX_CHOICES, MAX_DIMENSIONS, ORDINAL, Param, SearchSpace, is_number
from requests_app.errors import WorkTypeValidationError

_NEVERGRAD_TYPES = ("Choice", "TransitionChoice", "Scalar", "Log", "Array")
_NATIVE_TYPES = ("float", "int", "categorical", "ordinal")


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
    keys = [repr(c) if not is_number(c) else float(c) for c in raw]
    if len(set(keys)) != len(keys):
        raise WorkTypeValidationError({where: "choices contain duplicates; list each value once"})
    return tuple(raw)


def _bounds(values: Iterable[Any], where: str, names: tuple[str, str] = ("low", "high")) -> tuple[float, float]:
    low, high = values
    for label, value in zip(names, (low, high), strict=True):
        if not is_number(value):
            raise WorkTypeValidationError({where: f"{label} must be a finite number, got {value!r}"})
    if low >= high:
        raise WorkTypeValidationError({where: f"low ({low}) must be less than high ({high})"})
    return low, high


def _int_bounds(low: float, high: float, where: str) -> tuple[int, int]:
    if float(low) != int(low) or float(high) != int(high):
        raise WorkTypeValidationError({where: f"integer bounds must be whole numbers, got [{low}, {high}]"})
    return int(low), int(high)
