"""Log expected improvement as a bayes-opt 3.x acquisition function, with a gradient-based optimiser.

bayes-opt's own ``ExpectedImprovement`` works on EI itself, which underflows to exactly zero far from the
incumbent once the GP is confident, leaving its L-BFGS-B starts on flat ground; and it differentiates the
acquisition numerically. Log-EI (Ament et al. 2023, "Unexpected improvements to expected improvement") is
smooth everywhere and its analytic input gradient comes from ``MaternGP.predict_with_gradients``.

bayes-opt maximises its targets, so EI here is improvement *above* the best (standardised) target.
Pending points (issued, no loss yet) enter as kriging-believer fantasies: the GP is conditioned on its own
mean at each of them, which collapses the posterior variance there, and the fantasised values count towards the
incumbent, so the next point of a batch has to promise improvement over them rather than sit beside them.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from bayes_opt.acquisition import AcquisitionFunction
from bayes_opt.target_space import TargetSpace
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr, logsumexp, ndtr, softmax

from hpo.generators.gp import MaternGP

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_HALF_PI = math.sqrt(math.pi / 2)
#: Below this z, EI's closed form cancels catastrophically; use the erfcx form instead.
_Z_SWITCH = -5.0


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(phi(z) + z Phi(z)) and its derivative Phi(z) / h(z), stable for very negative z."""
    z = np.maximum(z, -1e3)
    out = np.empty_like(z)
    dout = np.empty_like(z)
    upper = z > _Z_SWITCH
    zu = z[upper]
    h = np.exp(-0.5 * zu * zu - _LOG_SQRT_2PI) + zu * ndtr(zu)
    out[upper] = np.log(h)
    dout[upper] = np.exp(log_ndtr(zu)) / h
    zl = z[~upper]
    # Phi(z)/phi(z) = sqrt(pi/2) erfcx(-z/sqrt2), so h = phi(z) (1 + z R).
    ratio = _SQRT_HALF_PI * erfcx(-zl / math.sqrt(2))
    tail = 1.0 + zl * ratio
    out[~upper] = -0.5 * zl * zl - _LOG_SQRT_2PI + np.log(tail)
    dout[~upper] = ratio / tail
    return out, dout


class LogExpectedImprovement(AcquisitionFunction):
    """Log-EI maximised by many random and local candidates, then L-BFGS-B from the best few.

    ``snap`` maps a relaxed cube vector onto the cube image of the point it decodes to (rounding ints,
    picking categories) and ``is_taken`` tells whether a snapped vector repeats, or sits too close to, a point
    the study already has or this batch already proposed; both come from the generator, which knows the space.
    """

    def __init__(
        self,
        *,
        snap: Callable[[np.ndarray], np.ndarray],
        is_taken: Callable[[np.ndarray], bool],
        repair: Callable[[np.ndarray], np.ndarray | None] | None = None,
        n_candidates: int = 2048,
        n_starts: int = 10,
        hyperparameter_samples: int = 1,
        batch_strategy: str = "local",
        whole_range_columns: np.ndarray | None = None,
        trust_half_width: float = 0.25,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.snap = snap
        self.is_taken = is_taken
        self.repair = repair
        self.n_candidates = n_candidates
        self.n_starts = n_starts
        self.hyperparameter_samples = hyperparameter_samples
        self.batch_strategy = batch_strategy
        #: Cube columns the trust region does not narrow: the one-hot columns of categories, where "near" means
        #: nothing and a box around the incumbent would pin every later point of a batch to its category.
        self.whole_range_columns = whole_range_columns
        self.seed = seed
        #: Candidates each Thompson draw is evaluated at (a joint sample costs O(m^3) in their number).
        self.thompson_candidates = 1024
        #: Posterior draws at the pending points for ``batch_strategy="fantasies"``.
        self.fantasies = 4
        #: Half-width of the trust region of ``batch_strategy="local"`` for a length scale of average size.
        self.trust_half_width = trust_half_width
        self.pending: list[np.ndarray] = []
        #: Whether this point follows the global ones of its generation (set by the generator): ``"local"`` keeps
        #: the first points of every generation global even when other workers' points are pending, so a study
        #: whose stock is refilled while workers are busy still explores.
        self.follows_in_generation = False
        self._best = 0.0
        self._model: MaternGP | None = None

    def get_acquisition_params(self) -> dict[str, Any]:
        """Settings, for bayes-opt's save_state."""
        return {"n_candidates": self.n_candidates, "n_starts": self.n_starts, "seed": self.seed}

    def set_acquisition_params(self, params: dict[str, Any]) -> None:
        """Restore settings saved by ``get_acquisition_params``."""
        self.n_candidates = params["n_candidates"]
        self.n_starts = params["n_starts"]
        self.seed = params["seed"]

    def base_acq(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Log-EI from standardised posterior mean and std."""
        z = (mean - self._best) / std
        value, _ = log_h(z)
        return value + np.log(std)

    def _value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log of the EI averaged over the models, at one cube vector, and its gradient (for L-BFGS-B)."""
        values, grads = [], []
        for model, best in zip(self._models, self._bests, strict=True):
            mean, std, dmean, dstd = model.predict_with_gradients(x[None, :])
            z = (mean - best) / std
            value, dvalue = log_h(z)
            dz = (dmean - z[:, None] * dstd) / std[:, None]
            grads.append((dvalue[:, None] * dz + dstd / std[:, None])[0])
            values.append(value[0] + math.log(std[0]))
        values_array = np.array(values)
        weights = softmax(values_array)
        total = logsumexp(values_array) - math.log(len(values))
        return -float(total), -(weights @ np.array(grads))

    def _score(self, X: np.ndarray) -> np.ndarray:
        """Log of the model-averaged EI at each row of ``X``."""
        scores = []
        for model, best in zip(self._models, self._bests, strict=True):
            mean, std = model._predict_standardised(X)
            z = (mean - best) / std
            value, _ = log_h(z)
            scores.append(value + np.log(std))
        return logsumexp(np.array(scores), axis=0) - math.log(len(scores))

    def _candidates(self, rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform candidates, and Gaussian perturbations of the best observed points (where the optimum hides)."""
        uniform = rng.random((self.n_candidates, dim))
        order = np.argsort(-self._model._ys[: self._n_observed])[:5]
        local = [
            np.clip(self._model.X_train_[i] + rng.normal(0.0, scale, (100, dim)), 0.0, 1.0)
            for i in order
            for scale in (0.01, 0.05, 0.2)
        ]
        return uniform, np.vstack(local)

    def _with_repairs(self, finals: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The final candidates plus, for the best few refused ones, their nearest allowed neighbours."""
        repaired = []
        for i in np.argsort(-scores)[: self.n_starts]:
            if self.is_taken(finals[i]):
                moved = self.repair(finals[i])
                if moved is not None:
                    repaired.append(self.snap(moved))
        if not repaired:
            return finals, scores
        extra = np.array(repaired)
        return np.vstack([finals, extra]), np.concatenate([scores, self._score(extra)])

    def suggest(
        self,
        gp: MaternGP,
        target_space: TargetSpace,
        n_random: int = 10_000,  # noqa: ARG002 — bayes-opt's knobs; this optimiser has its own
        n_smart: int = 10,  # noqa: ARG002
        fit_gp: bool = True,
        random_state: Any = None,  # noqa: ARG002 — randomness comes from self.seed and the history length
    ) -> np.ndarray:
        """The cube vector maximising log-EI given the observations and the pending points."""
        self.i += 1
        if fit_gp:
            self._fit_gp(gp=gp, target_space=target_space)
        self._n_observed = len(target_space)
        dim = target_space.dim
        rng = np.random.default_rng([self.seed, self._n_observed, len(self.pending)])
        self._models = []
        for sample in gp.hyperparameter_samples(self.hyperparameter_samples, rng):
            if self.pending and self.batch_strategy == "fantasies":
                # Sampled fantasies: each model believes one joint posterior draw at the pending points, and the
                # acquisition averages EI over them (a Monte-Carlo estimate of the batch's expected improvement
                # gained by the new point, the greedy step of q-EI).
                pending = np.asarray(self.pending)
                for _ in range(self.fantasies):
                    model = copy.copy(sample)
                    draw = sample.sample_joint(pending, rng) * sample._y_std + sample._y_mean
                    model.condition_on(pending, draw)
                    self._models.append(model)
                continue
            model = copy.copy(sample)
            if self.pending:
                # Kriging believer: each model believes its own mean at the pending points.
                pending = np.asarray(self.pending)
                model.condition_on(pending, sample.predict(pending))
            self._models.append(model)
        self._model = self._models[0]
        # The fantasies count as observations for the incumbent too (Ginsbourger et al. 2010's kriging believer):
        # with only the real best to beat, the point next to a pending one promising improvement keeps nearly
        # all of its EI, and a batch collapses onto one spot.
        self._bests = [float(m._ys.max()) for m in self._models]
        self._best = self._bests[0]
        if self.pending and self.batch_strategy == "thompson":
            return self._thompson(rng, dim)

        low, high = np.zeros(dim), np.ones(dim)
        if self.follows_in_generation and self.batch_strategy == "local":
            low, high = self._trust_region()
        uniform, local = self._candidates(rng, dim)
        uniform = low + uniform * (high - low)
        local = np.clip(local, low, high)
        candidates = np.array([self.snap(x) for x in np.vstack([uniform, local])])
        scores = self._score(candidates)
        # Half the L-BFGS-B starts from the uniform candidates, half from those near the best points: ranking all
        # together would spend every start on the incumbent's basin and never look at a far, better optimum.
        n_uniform = len(uniform)
        order_uniform = np.argsort(-scores[:n_uniform])
        order_local = n_uniform + np.argsort(-scores[n_uniform:])
        half = self.n_starts // 2
        starts = candidates[np.concatenate([order_uniform[: self.n_starts - half], order_local[:half]])]
        finals = [candidates[i] for i in np.argsort(-scores)[: 4 * self.n_starts]]
        for start in starts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = minimize(
                    self._value_and_grad,
                    start,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=list(zip(low, high, strict=True)),
                    options={"maxiter": 200},
                )
            finals.insert(0, self.snap(result.x))
        finals_array = np.array(finals)
        final_scores = self._score(finals_array)
        if self.repair is not None:
            finals_array, final_scores = self._with_repairs(finals_array, final_scores)
        for i in np.argsort(-final_scores):
            if not self.is_taken(finals_array[i]):
                return finals_array[i]
        # Everything good is taken (tiny discrete space): any free candidate will do.
        for x in candidates[np.argsort(-scores)]:
            if not self.is_taken(x):
                return x
        return rng.random(dim)

    def _trust_region(self) -> tuple[np.ndarray, np.ndarray]:
        """A box around the best observed point, its sides in proportion to the model's length scales (TuRBO's
        shape, Eriksson et al. 2019): where the points of a batch after the first refine the incumbent."""
        model = self._model
        centre = model.X_train_[int(np.argmax(model._ys[: self._n_observed]))]
        scales = model._lengthscales / math.exp(np.log(model._lengthscales).mean())
        half = np.clip(self.trust_half_width * scales, 0.01, 0.5)
        low, high = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
        if self.whole_range_columns is not None:
            low[self.whole_range_columns], high[self.whole_range_columns] = 0.0, 1.0
        return low, high

    def _thompson(self, rng: np.random.Generator, dim: int) -> np.ndarray:
        """The best free candidate of one joint posterior sample (batch Thompson sampling, Kandasamy et al. 2018).

        Used for the points proposed while others are pending. Each draw is a plausible loss surface; its optimum
        lies where the model thinks the optimum may be, so a batch spreads over the plausible optima in proportion
        to the model's belief: late in a study the draws cluster around the incumbent at the scale of the
        model's uncertainty (parallel refinement), early on they scatter. The kriging-believer conditioning on the
        pending points (above) lowers the variance there, so a draw rarely lands on one of them again.
        """
        model = self._model
        n_uniform = self.thompson_candidates // 2
        uniform = rng.random((n_uniform, dim))
        order = np.argsort(-model._ys[: self._n_observed])[:5]
        per = max((self.thompson_candidates - n_uniform) // (3 * len(order)), 1)
        local = [
            np.clip(model.X_train_[i] + rng.normal(0.0, scale, (per, dim)), 0.0, 1.0)
            for i in order
            for scale in (0.005, 0.03, 0.15)
        ]
        candidates = np.unique(np.array([self.snap(x) for x in np.vstack([uniform, *local])]), axis=0)
        draw = model.sample_joint(candidates, rng)
        for i in np.argsort(-draw):
            x = candidates[i]
            if not self.is_taken(x):
                return x
            if self.repair is not None:
                moved = self.repair(x)
                if moved is not None and not self.is_taken(self.snap(moved)):
                    return self.snap(moved)
        return rng.random(dim)
