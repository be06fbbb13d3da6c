"""The few distribution functions drift tests need, from ``scipy.special`` only, loaded lazily.

``from scipy import stats`` costs ~0.7 s at import (it parses every distribution's docstring),
about half of a whole ``infersight drift`` run; the tests need five functions, which
``scipy.special`` (~0.1 s) computes exactly as ``scipy.stats`` does: ``chi2.sf`` is ``chdtrc``,
``chi2.isf`` ``chdtri``, ``norm.sf(x)`` ``ndtr(-x)``, ``binom.sf`` ``_binom_sf`` (Boost), and
``kstwo`` comes from :mod:`._kolmogorov`. Nothing is imported until a test runs, so importing
the drift package (for the CLI's parser, or the registry) stays cheap.

Example:
    >>> round(chi2_sf(3.84, 1), 3), round(float(norm_sf(1.96)), 3)
    (0.05, 0.025)
"""

from __future__ import annotations

import functools
import math
from typing import Any

__all__ = ["chi2_sf", "chi2_isf", "norm_sf", "binom_sf", "kstwo_sf", "kstwo_isf"]


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


def kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``."""
    from infersight.stats.drift._kolmogorov import kstwo_sf as sf

    return sf(d, n)


def kstwo_isf(q: float, n: int) -> float:
    """``scipy.stats.kstwo.isf(q, n)``."""
    from infersight.stats.drift._kolmogorov import kstwo_isf as isf

    return isf(q, n)
