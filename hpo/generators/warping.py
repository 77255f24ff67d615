"""Loss warping for the bayesian generator: what the Gaussian process models instead of the raw losses.

A GP with a stationary kernel assumes the loss varies about as much everywhere. Losses spanning orders of
magnitude (Rosenbrock's valley at 0 next to walls at 10^3, a training that diverges) break that: the few huge
values set the signal variance and the length scales, and the region near the optimum, where the differences
that matter are tiny, looks flat. Every transform here is monotone, so the order of the points is kept.

* ``power`` (the default): a Box-Cox power transform of the losses measured from the best one, its exponent
  fitted by maximum likelihood (the output warping of HEBO, Cowen-Rivers et al. 2022). Losses that are already
  roughly Gaussian keep an exponent near 1 (the identity), losses log-normal-like get an exponent near 0 (a
  log), which squeezes the tail and spreads the good end out: on by default because it only acts where it helps.
* ``standardize``: none (the GP standardises internally).
* ``log``: the log of the distance to the best loss plus a small offset, a strong fixed warping.
* ``rank``: normal quantiles of the ranks, magnitudes ignored.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import boxcox, norm

OUTPUT_TRANSFORMS = ("power", "standardize", "log", "rank")
#: Where the best loss sits after the shift, in standard deviations of the losses.
POWER_OFFSET = 0.01
#: Bounds on the fitted Box-Cox exponent: with a few dozen losses the likelihood is flat and the fit can
#: run off to exponents that turn one outlier into the whole signal.
POWER_BOUNDS = (-2.0, 2.0)


def power_warp(losses: np.ndarray) -> np.ndarray:
    """Box-Cox transform of the losses measured from the best one, its exponent fitted by maximum likelihood.

    The losses are shifted so the best is ``POWER_OFFSET`` standard deviations above zero (Box-Cox needs
    positive values; the offset keeps the log-like end from turning the best point into a spike).
    """
    spread = float(losses.std())
    if spread == 0.0 or not np.isfinite(spread):
        return losses
    shifted = (losses - losses.min()) / spread + POWER_OFFSET
    with warnings.catch_warnings():
        # scipy warns about overflow while searching exponents far from the optimum.
        warnings.simplefilter("ignore")
        _, exponent = boxcox(shifted)
        exponent = float(np.clip(exponent, *POWER_BOUNDS)) if np.isfinite(exponent) else 1.0
        warped = boxcox(shifted, lmbda=exponent)
    return warped if np.all(np.isfinite(warped)) else losses


def transform_losses(losses: np.ndarray, how: str) -> np.ndarray:
    """Warp losses (lower is better) before the GP sees them; the order of points is kept."""
    if how == "standardize" or len(losses) < 2:
        return losses
    if how == "power":
        return power_warp(losses)
    if how == "log":
        spread = float(np.median(losses) - losses.min())
        offset = max(spread * 1e-3, 1e-12)
        return np.log(losses - losses.min() + offset)
    ranks = np.argsort(np.argsort(losses, kind="stable"), kind="stable")
    return norm.ppf((ranks + 0.5) / len(losses))
