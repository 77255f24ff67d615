"""Built-in HPO generators, registered by dotted path so that importing one never imports the others."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpo.generators.base import Generator

#: ``method`` name -> dotted path of its Generator subclass (healthchecks' TRANSPORTS pattern).
GENERATORS: dict[str, str] = {
    "random": "hpo.generators.random.RandomGenerator",
    "grid": "hpo.generators.grid.GridGenerator",
    "bayesian": "hpo.generators.bayesian.BayesianGenerator",
    "nevergrad": "hpo.generators.nevergrad.NevergradGenerator",
    "program": "hpo.generators.program.ProgramGenerator",
}


def generator_class(method: str) -> type[Generator]:
    """The Generator subclass registered for ``method``; ``KeyError`` names the known methods."""
    try:
        path = GENERATORS[method]
    except KeyError:
        raise KeyError(f"unknown method {method!r}; use one of {sorted(GENERATORS)}") from None
    module_name, class_name = path.rsplit(".", 1)
    return getattr(import_module(module_name), class_name)
