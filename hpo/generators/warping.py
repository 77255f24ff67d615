"""Loss warping for the bayesian generator: what the Gaussian process models instead of the raw losses.

A GP with a stationary kernel assumes the loss varies about as much everywhere. Losses spanning orders of
magnitude (Rosenbrock's valley at 0 next to walls at 10^3, a training that diverges) break that: the few huge
values set the signal variance and the length scales, and the region near the optimum, where the differences
that matter are tiny, looks flat. Every transform here is monotone, so the order of the points is kept.

* ``power`` (the default): a Box-Cox power transform of the losses' distance to the best one (in units of
  the median distance, plus one), its exponent fitted by maximum likelihood (in the spirit of HEBO's output
  warping, Cowen-Rivers et al. 2022). Losses that are already roughly Gaussian keep an exponent near 1 (the
  identity); a long tail gets an exponent near 0, ``log(1 + d / median)``, which squeezes the tail and leaves
  the good end linear: on by default because it only acts where the losses call for it.
* ``standardize``: none (the GP standardises internally).
* ``log``: the log of the distance to the best loss plus a small offset, a strong fixed warping.
* ``rank``: normal quantiles of the ranks, magnitudes ignored.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import boxcox, norm

OUTPUT_TRANSFORMS = ("power", "standardize", "log", "rank")
#: Bounds on the fitted Box-Cox exponent: with a few dozen losses the likelihood is flat and the fit can
#: run off to exponents that turn one outlier into the whole signal.
POWER_BOUNDS = (-2.0, 2.0)


def power_warp(losses: np.ndarray) -> np.ndarray:
    """Box-Cox transform of the losses' distance to the best one, its exponent fitted by maximum likelihood.

    Distances are measured in units of the median distance and shifted by one (Box-Cox needs positive values):
    an exponent near 0 then gives ``log(1 + d / median)``, linear near the best loss, where the optimum is
    refined, and logarithmic in the tail of bad losses; an exponent near 1 leaves the losses as they are.
    """
    gaps = losses - losses.min()
    unit = float(np.median(gaps))
    if unit <= 0.0 or not np.isfinite(unit):
        return losses
    shifted = gaps / unit + 1.0
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
