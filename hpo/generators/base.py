"""The generator interface: every way of proposing HPO points sits behind ``Generator``.

Contract (each generator module in this package implements it):

* ``__init__(space, *, seed, options)`` — ``space`` is a parsed ``SearchSpace``; ``seed`` makes the generator
  reproducible; ``options`` are the method's own settings from the request (unknown keys are an error).
* ``generate(history, num_points, max_points) -> list[point]`` — ``history`` is every point the study holds,
  in creation order, as ``(point, loss)`` pairs; ``loss is None`` means the point is still awaiting its loss
  (pending). The generator returns at most ``min(num_points, max_points - len(history))`` new points, none of
  them equal to a point of the history (pending ones included), and ``[]`` to say it has nothing more to
  propose, which ends the study. Losses are minimised.
* The same space, seed, options and history give the same points: generators derive their randomness from
  ``(seed, len(history))``, never from global state, so a re-run generation (a worker died half way)
  proposes the same points.
* Failures raise ``GeneratorError`` with a reason for the user (and, for programs, output tails).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hpo.space import Point, SearchSpace

History = Sequence[tuple[Point, float | None]]


class GeneratorError(Exception):
    """A generation failed; ``reason`` is shown to the user, ``details`` (e.g. stdout/stderr tails) are kept."""

    def __init__(self, reason: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = dict(details or {})


class Generator(ABC):
    """Proposes new points from the history of a study (see the module docstring for the contract)."""

    #: The ``method`` name requests use.
    name: ClassVar[str]
    #: Recorded on every point as provenance; bump when proposals for the same input change.
    version: ClassVar[str] = "1"
    #: Option names and defaults this generator accepts.
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: SearchSpace, *, seed: int = 0, options: Mapping[str, Any] | None = None) -> None:
        self.space = space
        self.seed = int(seed)
        self.options = self.clean_options(options or {})

    @classmethod
    def clean_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``options``; unknown names raise ``ValueError`` naming the accepted ones."""
        unknown = sorted(set(options) - set(cls.default_options))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for method {cls.name!r}; accepted: {sorted(cls.default_options)}"
            )
        return {**cls.default_options, **options}

    def budget(self, history: History, num_points: int, max_points: int) -> int:
        """How many points this generation may return."""
        return max(0, min(int(num_points), int(max_points) - len(history)))

    def rng(self, history: History) -> np.random.Generator:
        """Randomness for this generation, fixed by the seed and the history length."""
        return np.random.default_rng([self.seed, len(history)])

    def taken_keys(self, history: History) -> set[tuple]:
        """Identity keys of every point the study already has (evaluated or pending)."""
        return {self.space.key(point) for point, _ in history}

    @abstractmethod
    def generate(self, history: History, num_points: int, max_points: int) -> list[Point]:
        """New points (``[]`` = done); see the module docstring."""

    def describe(self) -> dict[str, Any]:
        """Provenance recorded on each point this generator proposes."""
        return {"generator": self.name, "generator_version": self.version, "seed": self.seed}
