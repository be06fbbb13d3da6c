"""The few distribution functions drift tests need, from ``scipy.special`` only, loaded lazily.

``from scipy import stats`` costs ~0.7 s at import (it parses every distribution's docstring),
about half of a whole ``infersight drift`` run; the tests need five functions, which
``scipy.special`` (~0.1 s) computes exactly as ``scipy.stats`` does: ``chi2.sf`` is ``chdtrc``,
``chi2.isf`` ``chdtri``, ``norm.sf(x)`` ``ndtr(-x)``, ``binom.sf`` ``_binom_sf`` (Boost). The
two-sided Kolmogorov–Smirnov distribution is built here from ``scipy.special``'s exact
one-sided one (``smirnov``, or its C twin: :func:`smirnov_sf`) and the limiting one
(``kolmogorov``): see :func:`kstwo_sf`.
Nothing is imported until a test runs, so importing the drift package (for the CLI's parser,
or the registry) stays cheap.

Example:
    >>> round(chi2_sf(3.84, 1), 3), round(float(norm_sf(1.96)), 3)
    (0.05, 0.025)
"""

from __future__ import annotations

import functools
import math
from typing import Any

from infersight._extension import speedups as _ext

__all__ = [
    "chi2_sf",
    "chi2_isf",
    "norm_sf",
    "binom_sf",
    "binom_two_sided",
    "smirnov_sf",
    "kstwo_sf",
    "kstwo_sf_many",
    "kstwo_isf",
]


@functools.cache
def _special() -> Any:
    import scipy.special._ufuncs as ufuncs

    return ufuncs


def chi2_sf(x: float, df: int) -> float:
    """``scipy.stats.chi2.sf(x, df)``."""
    return float(_special().chdtrc(df, x))


def chi2_isf(q: float, df: int) -> float:
    """``scipy.stats.chi2.isf(q, df)`` for ``0 < q < 1``."""
    return float(_special().chdtri(df, q))


def norm_sf(x: Any) -> Any:
    """``scipy.stats.norm.sf(x)``, element-wise."""
    return _special().ndtr(-x)


def binom_sf(k: float, n: int, p: float) -> float:
    """``scipy.stats.binom.sf(k, n, p)``: P(X > k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return float(_special()._binom_sf(math.floor(k), n, p))


def binom_two_sided(k: Any, n: int, p: Any) -> Any:
    """Element-wise ``2 · min(P(X <= k), P(X >= k))`` for X ~ Binomial(n, p), capped at 1:
    the exact test of a count where the normal approximation is too generous (a category
    expected 5 times and seen 15 is p ≈ 4e-4 exactly, 1e-5 by the normal curve).

    >>> float(binom_two_sided(15, 500, 0.01)) < 1e-3 < float(binom_two_sided(12, 500, 0.01))
    True
    """
    import numpy as np

    sp = _special()
    k = np.asarray(k, dtype=np.float64)
    low = sp.bdtr(k, n, p)
    high = np.where(k > 0, sp.bdtrc(np.maximum(k - 1, 0), n, p), 1.0)
    return np.minimum(1.0, 2.0 * np.minimum(low, high))


# The exact one-sided tail in C (``_speedups.smirnov_sf``: Smirnov's sum with each term a
# binomial probability in Loader's saddle-point form, ~13 us at n = 455 where
# ``scipy.special.smirnov``'s double-double sum takes ~200 us; equal to it to ~1e-13 relative).
# Past _SMIRNOV_C_MAX scipy switches to an approximation of its own, so it is used there.
_c_smirnov_sf: Any = getattr(_ext, "smirnov_sf", None)
_SMIRNOV_C_MAX = 1_000_000


def smirnov_sf(n: int, d: float) -> float:
    """P(D+_n >= d), the one-sided one-sample Kolmogorov–Smirnov tail: ``scipy.special.
    smirnov(n, d)``, computed in C when the extension is built (to ~1e-13 relative).

    >>> abs(smirnov_sf(455, 0.1) - float(_special().smirnov(455, 0.1))) < 1e-15
    True
    """
    if _c_smirnov_sf is not None and 1 <= n <= _SMIRNOV_C_MAX:
        return float(_c_smirnov_sf(n, d))
    return float(_special().smirnov(n, d))


# Below this one-sided tail probability the two-sided one is twice it, to within the chance
# that both one-sided statistics pass ``d`` at once (a relative error under 1e-4 here).
_TAIL = 0.05


def kstwo_sf(d: float, n: int) -> float:
    """P(D_n >= d) for the two-sided one-sample Kolmogorov–Smirnov statistic of ``n`` values.

    In the tail, where every drift decision is taken (two-sided p < 0.1), it is twice the
    exact one-sided probability (``scipy.special.smirnov``), since D_n >= d is D+ >= d or
    D- >= d and both at once is of order p²: measured against ``scipy.stats.kstwo`` for
    n = 5..25,000, a relative error under 1e-4. Above it, the limiting distribution with
    Stephens' finite-sample correction of the scale, sqrt(n) + 0.12 + 0.11 / sqrt(n), within
    0.03 of the exact value: a p-value there never decides a test at the usual levels.

    >>> round(kstwo_sf(0.05, 1000), 4)
    0.013
    """
    if not d > 0.0:
        return 1.0
    if d >= 1.0:
        return 0.0
    sp = _special()
    # smirnov(n, d) falls with d, so "one-sided tail < _TAIL" is "d beyond the tail's edge";
    # the edge is cached per n, and windows far from the tail (most of them: no drift) skip
    # the exact one-sided sum (~0.2 ms at n = 500) for the limit (~2 µs).
    if d > _tail_edge(n):
        one_sided = smirnov_sf(n, d)
        if one_sided < _TAIL:
            return 2.0 * one_sided
    root = math.sqrt(n)
    return float(min(1.0, sp.kolmogorov(d * (root + 0.12 + 0.11 / root))))


def kstwo_sf_many(d: Any, n: Any) -> Any:
    """:func:`kstwo_sf` of each ``(d, n)`` pair (arrays), the same numbers, in a few calls.

    >>> float(kstwo_sf_many([0.05], [1000])[0]) == kstwo_sf(0.05, 1000)
    True
    """
    import numpy as np

    sp = _special()
    d = np.asarray(d, dtype=np.float64)
    n = np.asarray(n, dtype=np.int64)
    out = np.ones(d.shape)
    mid = (d > 0.0) & (d < 1.0)
    out[d >= 1.0] = 0.0
    if n.size:  # each distinct n once (a batch's windows share a few)
        uniq, inv = np.unique(n, return_inverse=True)
        edge = np.array([_tail_edge(v) for v in uniq.tolist()])[inv.ravel()].reshape(n.shape)
    else:
        edge = np.zeros(n.shape)
    tail = mid & (d > edge)
    if tail.any():
        if _c_smirnov_sf is not None:
            one = np.array([smirnov_sf(k, x) for k, x in zip(n[tail].tolist(), d[tail].tolist())])
        else:
            one = np.asarray(sp.smirnov(n[tail], d[tail]), dtype=np.float64)
        idx = np.flatnonzero(tail)
        small = one < _TAIL
        out[idx[small]] = 2.0 * one[small]
        tail[idx[~small]] = False
    rest = mid & ~tail
    root = np.sqrt(n[rest].astype(np.float64))
    out[rest] = np.minimum(1.0, sp.kolmogorov(d[rest] * (root + 0.12 + 0.11 / root)))
    return out


@functools.lru_cache(maxsize=4096)
def _tail_edge(n: int) -> float:
    """Slightly below the ``d`` where the one-sided tail reaches ``_TAIL`` (a margin, so that a
    ``d`` at the edge still takes the exact path and agrees with it)."""
    return float(_special().smirnovi(n, _TAIL)) * (1 - 1e-9)


def kstwo_isf(q: float, n: int) -> float:
    """The ``d`` with ``kstwo_sf(d, n) == q`` (the critical distance at level ``q``).

    >>> round(kstwo_isf(0.013, 1000), 3)
    0.05
    """
    if q / 2.0 < _TAIL:
        return float(_special().smirnovi(n, q / 2.0))  # the tail's own inverse, exact for it
    lo, hi = 0.0, 1.0  # kstwo_sf falls from 1 to 0 over [0, 1]: bisect to float resolution
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if kstwo_sf(mid, n) > q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
