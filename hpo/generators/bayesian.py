"""Bayesian optimisation through bayesian-optimization 3.x's ask/tell interface (``register`` / ``suggest``).

How bayes-opt is used, and what this module adds around it:

* The optimiser works in the unit cube of the encoded space (``SearchSpace.encode``): log parameters are
  uniform there, ints own equal cells, categories are one-hot columns. Every suggestion is decoded and
  re-encoded ("snapped") so the model only ever sees points that are really evaluated.
* Evaluated points are ``register``-ed with target ``-transform(loss)`` because bayes-opt maximises;
  ``suggest()`` asks for the next point.
* With ``acquisition="logei"`` (the default) bayes-opt's ``_gp`` slot holds ``MaternGP`` (MAP-fitted
  Matern-5/2 ARD) and its acquisition is ``LogExpectedImprovement``, which handles pending points by kriging
  believer. ``"ei"`` and ``"ucb"`` keep bayes-opt's own GP and acquisition classes, with pending points
  registered as constant lies (the worst target seen), for comparison and for users who want the classics.
* The first points are seeded uniform draws (bayes-opt's ask/tell gives one random point on an empty
  optimiser and nothing more), as many as ``initial_design`` (default ``min(10, max(4, 2 * dim))``), and
  keep coming from there until two losses are known.
* Losses are warped before modelling (``output_transform``, see ``hpo/generators/warping.py``): ``power``
  (default, a Box-Cox transform fitted to the losses, near the identity unless they have a long tail),
  ``standardize`` (none), ``log`` or ``rank``.
* No two points of a study closer than ``min_distance`` (default 1e-3) of every parameter's range, pending and
  earlier points included (``hpo/generators/spacing.py``): the acquisition optimiser skips such candidates, so a
  batch never spends two trainings on the same configuration. When the acquisition's best candidate is refused,
  its nearest allowed neighbour (pushed just outside the exclusion box) competes with the other candidates, so
  refining an optimum goes on at the rule's resolution.
* Batches (``batch_strategy``): each point of a generation is pending for the next one, and the log-EI
  acquisition conditions the GP on its own mean there (kriging believer) *and* counts that fantasy as the
  incumbent to beat. With ``"local"`` (the default) the first ``global_points`` (2) points of a generation are
  global log-EI optima and the others are sought in a trust region around the best point so far, a box whose
  sides follow the model's length scales (TuRBO's shape; categories are left free, so a batch is not pinned to
  the incumbent's category): they refine the incumbent in parallel, which is what a sequential run spends most
  of its late evaluations on. The box's half-width for a length scale of average size is ``trust_half_width``
  (0.25 of the range). Both were chosen on 10- and 20-seed runs at 5 points per generation
  (docs/hpo-quality.md): 0.25 rather than 0.15 took Levy-5 from 3.5 to 1.4 and Hartmann-6 at 10 points from
  0.09 to 0.012; two global points rather than one took Levy-5 over 20 seeds from 3.8x to 2.1x its
  sequential figure. ``"believer"`` searches the whole cube
  for every point (the fantasies push the later points of a batch away, i.e. exploring); ``"thompson"`` takes
  the best candidate of a joint posterior draw; ``"fantasies"`` averages EI over joint posterior draws at the
  pending points (greedy q-EI). Measured in docs/hpo-quality.md: at 5 points per generation ``local`` came
  closest to the sequential figures; the others explore too much for a 50-point budget.
* Generation time is bounded: past ``max_model_points`` (default 200) evaluated points the GP is fitted on a
  subsample, the best half of that size by loss plus a seeded uniform draw of the others, and only the most
  recent ``max_model_points // 4`` pending points are fantasised (the spacing rule still sees all of them).
  An exact GP costs O(n^3) per likelihood evaluation; 200 points keep one generation of 10 points to a few
  seconds at any study size.
* The optimiser is rebuilt from the history on every generation with randomness seeded by
  ``(seed, len(history))``: the generator keeps no state, and a repeated generation gives the same points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from bayes_opt import BayesianOptimization, acquisition

from hpo.generators.acquisition import LogExpectedImprovement
from hpo.generators.base import Generator, GeneratorError, History
from hpo.generators.gp import MaternGP
from hpo.generators.spacing import PointSpacing
from hpo.generators.warping import OUTPUT_TRANSFORMS, transform_losses
from hpo.space import CATEGORICAL, Point

ACQUISITIONS = ("logei", "ei", "ucb")
#: How the log-EI acquisition proposes a point while others are pending (see the module docstring).
BATCH_STRATEGIES = ("believer", "thompson", "fantasies", "local")


class BayesianGenerator(Generator):
    """GP-based proposals via bayes-opt ask/tell (see the module docstring for the choices made)."""

    name = "bayesian"
    version = "5"
    default_options: ClassVar[dict[str, Any]] = {
        "acquisition": "logei",
        "output_transform": "power",
        "min_distance": 1e-3,
        "max_model_points": 200,
        "initial_design": None,
        "kappa": 2.576,
        "xi": 0.01,
        "n_candidates": 2048,
        "n_starts": 10,
        "hyperparameter_samples": 1,
        "batch_strategy": "local",
        "trust_half_width": 0.25,
        "global_points": 2,
    }

    def __init__(self, space, *, seed: int = 0, options=None) -> None:
        super().__init__(space, seed=seed, options=options)
        if self.options["acquisition"] not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {self.options['acquisition']!r}")
        if self.options["batch_strategy"] not in BATCH_STRATEGIES:
            raise ValueError(f"batch_strategy must be one of {BATCH_STRATEGIES}")
        if self.options["output_transform"] not in OUTPUT_TRANSFORMS:
            raise ValueError(f"output_transform must be one of {OUTPUT_TRANSFORMS}")
        if not 0.0 <= float(self.options["min_distance"]) < 0.5:
            raise ValueError("min_distance must be a fraction of each range in [0, 0.5)")
        if type(self.options["global_points"]) is not int or self.options["global_points"] < 1:
            raise ValueError("global_points must be an integer of at least 1")
        if not 0.0 < float(self.options["trust_half_width"]) <= 0.5:
            raise ValueError("trust_half_width must be a fraction of each range in (0, 0.5]")
        if int(self.options["max_model_points"]) < 10:
            raise ValueError("max_model_points must be at least 10")
        dim = space.cube_dim
        self.initial_design = int(self.options["initial_design"] or min(10, max(4, 2 * dim)))
        self._continuous = all(p.kind == "float" for p in space.params)
        # One-hot columns of categorical parameters (the trust region leaves them whole).
        self._category_columns = np.concatenate(
            [np.full(p.cube_width, p.kind == CATEGORICAL and p.cube_width == len(p.choices)) for p in space.params]
        )
        # Zero-padded so that any ordering bayes-opt applies to the keys is the cube's column order.
        self._keys = [f"x{i:04d}" for i in range(dim)]

    # --- pieces ----------------------------------------------------------------------------------------------

    def _initial_design(self, count: int, skip: int) -> np.ndarray:
        """Rows ``skip .. skip+count`` of this seed's initial design: independent uniform draws in the cube.

        A scrambled Sobol design was tried first; on Hartmann6 it led EI into the same local basin for the same
        seeds whatever the model settings (median regret 0.12 over 10 seeds, against 0.065 with uniform draws).
        """
        return np.random.default_rng([self.seed, 7]).random((skip + count, self.space.cube_dim))[skip:]

    def _optimizer(self, history: History, spacing: PointSpacing) -> BayesianOptimization:
        options = self.options
        seed = int(np.random.default_rng([self.seed, len(history)]).integers(2**31))
        kind = options["acquisition"]
        if kind == "logei":
            acq = LogExpectedImprovement(
                snap=self._snap,
                is_taken=spacing.refuses_cube,
                repair=spacing.nearest_allowed,
                n_candidates=options["n_candidates"],
                n_starts=options["n_starts"],
                hyperparameter_samples=options["hyperparameter_samples"],
                batch_strategy=options["batch_strategy"],
                whole_range_columns=self._category_columns,
                trust_half_width=float(options["trust_half_width"]),
                seed=seed,
            )
        elif kind == "ei":
            acq = acquisition.ExpectedImprovement(xi=options["xi"])
        else:
            acq = acquisition.UpperConfidenceBound(kappa=options["kappa"])
        optimizer = BayesianOptimization(
            f=None,
            pbounds={key: (0.0, 1.0) for key in self._keys},
            acquisition_function=acq,
            random_state=seed,
            verbose=0,
            allow_duplicate_points=True,
        )
        if kind == "logei":
            optimizer._gp = MaternGP(seed=seed)
        return optimizer

    def _snap(self, x: np.ndarray) -> np.ndarray:
        """``SearchSpace.snap``, short-cut to a clip where every column is a float (thousands of calls a point)."""
        if self._continuous:
            return np.clip(x, 0.0, 1.0)
        return self.space.snap(x)

    def _to_params(self, x: np.ndarray) -> dict[str, float]:
        return dict(zip(self._keys, map(float, x), strict=True))

    def _to_array(self, params: dict[str, Any]) -> np.ndarray:
        return np.array([params[key] for key in self._keys], dtype=float)

    # --- the generation -------------------------------------------------------------------------------------

    def generate(self, history: History, num_points: int, max_points: int) -> list[Point]:
        """Initial-design points until the design is done and two losses are known, then one suggestion each."""
        wanted = self.budget(history, num_points, max_points)
        if wanted == 0:
            return []
        spacing = PointSpacing(self.space, (p for p, _ in history), self.options["min_distance"])
        evaluated = [(p, loss) for p, loss in history if loss is not None and math.isfinite(loss)]
        points: list[Point] = []

        def accept(point: Point) -> bool:
            if spacing.refuses(point):
                return False
            spacing.add(point)
            points.append(point)
            return True

        if len(history) < self.initial_design or len(evaluated) < 2:
            count = max(self.initial_design - len(history), 0) if len(evaluated) >= 2 else wanted
            for row in self._initial_design(min(count, wanted), skip=len(history)):
                accept(self.space.decode(row))
        if len(points) < wanted and len(evaluated) >= 2:
            self._model_points(history, evaluated, spacing, wanted - len(points), accept)
        if len(points) < wanted and self.space.cardinality > len(spacing):
            # Discrete spaces can hand out duplicate design cells: fill up with random free points.
            rng = self.rng(history)
            for point in self.space.sample(rng, 50 * wanted):
                if len(points) == wanted:
                    break
                accept(point)
        return points

    def model_subset(self, history: History, evaluated: list[tuple[Point, float]]) -> tuple[list, list]:
        """The evaluated and pending points the GP is fitted on: all of them up to ``max_model_points``.

        Past it, the best ``max_model_points // 2`` by loss (where the optimum is refined) and a seeded uniform
        draw of the others (the model's picture of the rest of the space); the latest pending points only.
        """
        limit = int(self.options["max_model_points"])
        pending = [p for p, loss in history if loss is None][-(limit // 4) :]
        if len(evaluated) <= limit:
            return evaluated, pending
        order = np.argsort([loss for _, loss in evaluated], kind="stable")
        best, rest = order[: limit // 2], order[limit // 2 :]
        drawn = self.rng(history).choice(rest, size=limit - len(best), replace=False)
        keep = np.sort(np.concatenate([best, drawn]))
        return [evaluated[i] for i in keep], pending

    def _model_points(
        self,
        history: History,
        evaluated: list[tuple[Point, float]],
        spacing: PointSpacing,
        count: int,
        accept: Callable[[Point], bool],
    ) -> None:
        """Ask bayes-opt for ``count`` points, each new one pending for the next ask; ``accept`` collects them."""
        optimizer = self._optimizer(history, spacing)
        modelled, pending = self.model_subset(history, evaluated)
        losses = np.array([loss for _, loss in modelled], dtype=float)
        targets = -transform_losses(losses, self.options["output_transform"])
        for (point, _), target in zip(modelled, targets, strict=True):
            optimizer.register(params=self._to_params(self.space.encode(point)), target=float(target))
        lie = float(targets.min())
        for point in pending:
            self._add_pending(optimizer, self.space.encode(point), lie)
        acq = optimizer.acquisition_function
        try:
            for index in range(count):
                if isinstance(acq, LogExpectedImprovement):
                    acq.follows_in_generation = index >= self.options["global_points"]
                x = self._snap(self._to_array(optimizer.suggest()))
                # A repeat or a too-close point (bayes-opt's own acquisitions can re-suggest one) ends the model's
                # turn; the caller fills up with free random points.
                if not accept(self.space.decode(x)):
                    break
                self._add_pending(optimizer, x, lie)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise GeneratorError(f"the Gaussian-process model failed: {exc}") from exc

    def _add_pending(self, optimizer: BayesianOptimization, x: np.ndarray, lie: float) -> None:
        acq = optimizer.acquisition_function
        if isinstance(acq, LogExpectedImprovement):
            acq.pending.append(x)
        else:
            # Constant liar for bayes-opt's own acquisitions: pretend the point scored the worst target so far.
            optimizer.register(params=self._to_params(x), target=lie)
