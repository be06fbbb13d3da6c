"""Two-sample Kolmogorov–Smirnov.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> KS().fit(rng.normal(size=1000)).score(rng.normal(0.5, 1, 1000)).drift
    True
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from infersight.stats.cdf import ks_bounds
from infersight.stats.drift._dist import kstwo_isf, kstwo_sf
from infersight.stats.drift._samples import NumCur, NumRef
from infersight.stats.drift.base import NumericMethod
from infersight.stats.result import DriftResult

__all__ = ["KS"]

_SCIPY_EXACT_N = 10_000  # scipy's ks_2samp 'auto' is exact up to this size


def ks_exact(ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]) -> tuple[float, float]:
    """D and p as scipy.stats.ks_2samp (method='auto'); both inputs sorted."""
    if max(ref.size, cur.size) <= _SCIPY_EXACT_N:
        # The exact small-sample path is scipy's own; only raw samples on both sides reach it.
        from scipy.stats import ks_2samp

        r = ks_2samp(ref, cur)
        return float(r.statistic), float(r.pvalue)
    allv = np.concatenate([ref, cur])
    d = float(
        np.max(np.abs(np.searchsorted(ref, allv, "right") / ref.size - np.searchsorted(cur, allv, "right") / cur.size))
    )
    return d, ks_p(d, ref.size, cur.size)


def ks_p(d: float, m: int, n: int) -> float:
    """The asymptotic two-sample p-value (scipy's ``kstwo.sf`` at the effective size)."""
    en = m * n / (m + n)
    return float(np.clip(kstwo_sf(d, int(np.round(en))), 0.0, 1.0))


def ks_crit(alpha: float, m: int, n: int) -> float:
    """The critical D at ``alpha`` for samples of ``m`` and ``n``."""
    return _ks_crit_en(alpha, int(np.round(m * n / (m + n))))


@functools.lru_cache(maxsize=4096)
def _ks_crit_en(alpha: float, en: int) -> float:
    # kstwo's inverse is a numerical root (~1 ms); windows repeat the same sizes, so cache it.
    return kstwo_isf(alpha, en)


class KS(NumericMethod):
    """Two-sample Kolmogorov–Smirnov; drift when p < ``alpha``. ``threshold`` is the critical D.

    From raw samples D and p equal ``scipy.stats.ks_2samp``; from profiles/sketches D is the
    largest distance the CDF knots prove (``D <= D_exact <= D + details["error_bound"]``, see
    ``infersight.stats.cdf``) and p is the asymptotic one.
    """

    name = "ks"

    def _compute(self, ref: NumRef, cur: NumCur) -> DriftResult:
        if ref.sorted is not None and cur.sorted is not None:
            d, p = ks_exact(ref.sorted, cur.sorted)
            bound = 0.0
        else:
            d, hi = ks_bounds(ref.knots, cur.knots(ref))
            p = ks_p(d, ref.n, cur.n)
            bound = hi - d
        return DriftResult(
            self.name,
            d,
            ks_crit(self.alpha, ref.n, cur.n),
            p,
            p < self.alpha,
            None,
            ref.n,
            cur.n,
            {"error_bound": bound},
        )
