"""Distributions as CDF knots: the common ground of raw samples, profiles and sketches.

A :class:`Knots` is a CDF known exactly at increasing points ``x`` (``F[i] = P(X <= x[i])``)
and linear in between (values uniform inside a bin). Reference profiles store 200 equal-mass
knots, an OTel exponential histogram gives one knot per bucket boundary, and a raw sample gives
knots wherever we ask. KS and Wasserstein between two Knots are computed over the union of
their points, and their error against the raw samples is bounded:

* KS: ``|D_knots - D_exact| <= max(a.max_step, b.max_step)`` (the largest mass of one bin);
* Wasserstein: ``|W_knots - W_exact| <= a.spread + b.spread`` with
  ``spread = sum(mass_i * width_i)`` (each value moves at most its bin's width).

Example:
    >>> import numpy as np
    >>> a = Knots.from_sorted(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    >>> b = Knots.from_sorted(np.array([2.0, 3.0, 4.0, 5.0]), np.array([2.0, 3.0, 4.0, 5.0]))
    >>> ks(a, b), wasserstein(a, b)  # raw samples: 0.25 and 1.0; bound 0.75 + 0.75
    (0.25, 0.875)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from infersight.sketch import ExpHistogram

__all__ = ["Knots", "ks", "wasserstein", "bin_probs"]

_ZERO_WIDTH = 1e-300  # the zero bucket is an atom at 0: a jump just below it


@dataclass
class Knots:
    x: npt.NDArray[np.float64]
    F: npt.NDArray[np.float64]
    n: int

    @classmethod
    def from_cum(cls, x: npt.NDArray[np.float64], cum: npt.NDArray[np.int64], n: int) -> Knots:
        return cls(np.asarray(x, np.float64), np.asarray(cum, np.float64) / max(n, 1), n)

    @classmethod
    def from_sorted(cls, xs: npt.NDArray[np.float64], at: npt.NDArray[np.float64]) -> Knots:
        """Exact empirical CDF of sorted values ``xs`` at points ``at`` (sorted)."""
        return cls.from_cum(at, np.searchsorted(xs, at, side="right"), int(xs.size))

    @classmethod
    def from_sketch(cls, s: ExpHistogram) -> Knots:
        """Knots at the bucket boundaries of an OTel exponential histogram (clipped to min/max)."""
        if s.count == 0:
            return cls(np.zeros(0), np.zeros(0), 0)
        xs: list[npt.NDArray[np.float64]] = []
        cs: list[npt.NDArray[np.float64]] = []
        done = 0.0
        if not s.negative.empty:
            idx = np.arange(s.negative.last, s.negative.offset - 1, -1)  # most negative first
            lo, hi = s.bucket_bounds(idx)
            counts = s.negative.counts[::-1].astype(np.float64)
            xs += [np.array([-hi[0]]), -lo]
            cs += [np.zeros(1), np.cumsum(counts)]
            done = float(counts.sum())
        if s.zero_count:
            xs.append(np.array([-_ZERO_WIDTH, 0.0]))
            cs.append(np.array([done, done + s.zero_count]))
            done += s.zero_count
        if not s.positive.empty:
            idx = np.arange(s.positive.offset, s.positive.last + 1)
            lo, hi = s.bucket_bounds(idx)
            xs += [lo[:1], hi]
            cs += [np.array([done]), done + np.cumsum(s.positive.counts.astype(np.float64))]
        x = np.clip(np.concatenate(xs), s.min, s.max)
        c = np.concatenate(cs)
        keep = np.append(x[1:] != x[:-1], True)  # repeated x after clipping: keep the last (an atom)
        return cls.from_cum(x[keep], c[keep].astype(np.int64), s.count)

    def at(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.interp(q, self.x, self.F, left=0.0, right=1.0)

    @property
    def max_step(self) -> float:
        """Largest mass of one bin (including an atom at the first knot)."""
        return float(np.max(np.diff(self.F, prepend=0.0))) if self.F.size else 0.0

    @property
    def spread(self) -> float:
        """``sum(mass_i * width_i)``: the most the uniform-in-bin assumption can move mass."""
        if self.x.size < 2:
            return 0.0
        return float(np.sum(np.diff(self.F) * np.diff(self.x)))


def _union(a: Knots, b: Knots) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    u = np.union1d(a.x, b.x)
    return u, a.at(u), b.at(u)


def ks(a: Knots, b: Knots) -> float:
    """Kolmogorov–Smirnov distance between two knot CDFs."""
    if a.n == 0 or b.n == 0:
        return float("nan")
    _, fa, fb = _union(a, b)
    return float(np.max(np.abs(fa - fb)))


def wasserstein(a: Knots, b: Knots) -> float:
    """``∫|Fa - Fb| dx`` for two piecewise-linear CDFs (exact for them)."""
    if a.n == 0 or b.n == 0:
        return float("nan")
    u, fa, fb = _union(a, b)
    return float(abs_linear_integral(u, (fa - fb)[None, :])[0])


def abs_linear_integral(x: npt.NDArray[np.float64], d: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``∫|d|`` for rows of a function linear between points ``x`` (exact at sign changes)."""
    h = np.diff(x)
    d0, d1 = d[:, :-1], d[:, 1:]
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = np.where(a0 + a1 > 0, (d0 * d0 + d1 * d1) / (2 * (a0 + a1)), 0.0)
    return np.sum(np.where(same, (a0 + a1) / 2, cross) * h, axis=1)


def bin_probs(k: Knots, edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Mass in ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` (interpolated inside bins)."""
    f = k.at(edges)
    return np.diff(np.concatenate([[0.0], f, [1.0]]))
