"""Nevergrad ask/tell, run in nevergrad's own virtual environment through the generator-program contract.

Nevergrad and bayes-opt 3 cannot share one environment (their pins conflict; see the README's
"Hyperparameter optimisation"), so this generator runs ``hpo/runners/nevergrad_runner.py`` with the venv's
interpreter (``hpo.nevergrad_env``, created on first use or by ``manage.py setup_nevergrad``) exactly like a
user's program: %IN with the history, %OUT with the new points.
It goes through the same sandbox module as users' programs (``requests_app.sandbox``): in bubblewrap with the
venv bound read-only and the runner copied into the working directory, or, where bubblewrap is missing, on
the host with the same clean environment and limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hpo.generators.base import History
from hpo.generators.program import ProgramGenerator, ProgramSpec, run_program
from hpo.nevergrad_env import default_venv_path, ensure_venv, venv_python
from hpo.space import Point

#: Outside hpo/generators: run as a script, its directory goes first on sys.path, where our ``nevergrad.py`` and
#: ``random.py`` would shadow the real packages. ``-I`` keeps PYTHONPATH and user site-packages out as well.
RUNNER = Path(__file__).resolve().parent.parent / "runners" / "nevergrad_runner.py"


#: ``optimizer`` value that picks one by budget, dimension and batch size (``default_optimizer``).
AUTO = "auto"
#: Budgets up to this many evaluations per dimension count as small: too few for a population-based optimiser.
SMALL_BUDGET_PER_DIMENSION = 100
#: With fewer generations than this, no optimiser can adapt: a space-filling design is the best use of the budget.
MIN_ADAPTIVE_GENERATIONS = 4


def default_optimizer(budget: int, dimension: int, batch: int) -> str:
    """The nevergrad optimiser ``optimizer="auto"`` runs for this budget, dimension and batch size.

    Measured at 50 evaluations asked 5 or 10 at a time, 6 test functions (docs/hpo-generators.md): the old
    default TwoPointsDE spends the budget on its initial population and was no better than random search;
    NGOpt and CMA start at the centre with small steps and stay there; CauchyOnePlusOne (a (1+1) evolution
    strategy with heavy-tailed mutations, so it both refines and jumps) came out best. Large budgets go to
    NGOpt, nevergrad's own selector, which takes budget, dimension and workers into account.
    """
    if budget > SMALL_BUDGET_PER_DIMENSION * max(dimension, 1):
        return "NGOpt"
    if batch * MIN_ADAPTIVE_GENERATIONS > budget:
        return "ScrHammersleySearchPlusMiddlePoint"
    return "CauchyOnePlusOne"


class NevergradGenerator(ProgramGenerator):
    """Options: ``optimizer`` (a name from ``nevergrad.optimizers.registry``, default ``auto``: chosen by
    ``default_optimizer``), ``timeout``, ``memory_mb``, ``venv`` (path; default ``HPO_NEVERGRAD_VENV`` or
    ``var/nevergrad-venv``)."""

    name = "nevergrad"
    version = "2"
    default_options: ClassVar[dict[str, Any]] = {
        "optimizer": AUTO,
        "timeout": 300.0,
        "memory_mb": 4096,
        "venv": None,
    }

    def __init__(self, space, *, seed: int = 0, options=None) -> None:
        # Skips ProgramGenerator.__init__: the program is fixed, only these options apply.
        super(ProgramGenerator, self).__init__(space, seed=seed, options=options)
        self._venv = Path(self.options["venv"]) if self.options["venv"] else default_venv_path()

    def _spec(self) -> ProgramSpec:
        ensure_venv(self._venv)
        # Resolved: the sandbox binds the venv at its real path, where its interpreter must be named.
        venv = self._venv.resolve()
        return ProgramSpec(
            executable=str(venv_python(venv)),
            arguments=f"-I {RUNNER.name} %IN %OUT",
            timeout=float(self.options["timeout"]),
            memory_mb=self.options["memory_mb"],
            service=True,
            read_only=(venv,),
            files={RUNNER.name: RUNNER},
        )

    def optimizer_name(self, max_points: int, batch: int) -> str:
        """The optimiser this study runs: the one asked for, or the budget's default for ``auto``."""
        if self.options["optimizer"] != AUTO:
            return str(self.options["optimizer"])
        dimension = sum(p.size for p in self.space.params)
        return default_optimizer(int(max_points), dimension, int(batch))

    def payload(self, history: History, wanted: int, num_points: int, max_points: int) -> dict[str, Any]:
        """The runner's input document for one generation of ``wanted`` points."""
        return {
            "points": [[point, loss] for point, loss in history],
            "opt_space": self.space.to_native(),
            "num_points": wanted,
            "nevergrad": {
                # The batch is what the study asks for, not what is left of the budget at its end.
                "optimizer": self.optimizer_name(max_points, int(num_points)),
                "seed": self.seed,
                "budget": max_points,
            },
        }

    def generate(self, history: History, num_points: int, max_points: int) -> list[Point]:
        """One run of the runner in the nevergrad venv."""
        wanted = self.budget(history, num_points, max_points)
        if wanted == 0:
            return []
        payload = self.payload(history, wanted, num_points, max_points)
        output = run_program(self._spec(), payload, num_points=wanted, max_points=max_points)
        return self.accept_output(output, history, wanted)
