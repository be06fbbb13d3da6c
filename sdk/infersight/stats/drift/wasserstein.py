"""Wasserstein-1 distance, normalised by the reference standard deviation.

Example:
    >>> Wasserstein().fit([0.0, 1.0, 2.0, 3.0]).score([1.0, 2.0, 3.0, 4.0]).statistic
    0.7745966692414834
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from infersight.stats.cdf import wasserstein as w_knots
from infersight.stats.cdf import wasserstein_bounds
from infersight.stats.drift._samples import NumCur, NumRef
from infersight.stats.drift.base import NumericMethod
from infersight.stats.result import DriftResult

__all__ = ["Wasserstein"]


def w_exact(ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]) -> float:
    """W1 of two sorted samples, as scipy.stats.wasserstein_distance computes it."""
    allv = np.sort(np.concatenate([ref, cur]))
    deltas = np.diff(allv)
    fu = np.searchsorted(ref, allv[:-1], "right") / ref.size
    fv = np.searchsorted(cur, allv[:-1], "right") / cur.size
    return float(np.sum(np.abs(fu - fv) * deltas))


class Wasserstein(NumericMethod):
    """W1 divided by the reference standard deviation; drift when >= ``threshold`` (0.1)."""

    name = "wasserstein"

    def _compute(self, ref: NumRef, cur: NumCur) -> DriftResult:
        if ref.sorted is not None and cur.sorted is not None:
            w, bound = w_exact(ref.sorted, cur.sorted), 0.0
        else:
            a, b = ref.knots, cur.knots(ref)
            w = w_knots(a, b)
            lo, hi = wasserstein_bounds(a, b)
            bound = max(hi - w, w - lo, 0.0)
        scale = ref.std if ref.std > 0 else 1.0
        stat = w / scale
        return DriftResult(
            self.name,
            stat,
            self.threshold,
            None,
            stat >= self.threshold,
            None,
            ref.n,
            cur.n,
            {"distance": w, "error_bound": bound / scale},
        )
