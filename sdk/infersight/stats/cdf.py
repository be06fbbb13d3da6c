"""Distributions as CDF knots: the common ground of raw samples, profiles and sketches.

A :class:`Knots` is a CDF known **exactly** at increasing points ``x`` (``F[i] = P(X <= x[i])``)
and unknown in between except that it cannot decrease. Reference profiles give knots at their
quantile edges and, just below each edge, the share strictly below it (so an atom — a value
with positive mass: integers, rounded prices, a clip bound — is a jump, not a ramp); an OTel
exponential histogram gives one knot per bucket boundary (the buckets are ``(lo, hi]``, so a
value sitting inside a bucket is never located more precisely than its bucket); a raw sample
gives knots wherever we ask. Every set of knots starts with a knot of ``F = 0`` just below the
minimum and ends with ``F = 1`` at the maximum.

Between two knots the true CDF lies in the envelope ``[lower(x), upper(x)]`` (the F of the
knot at or before ``x`` and of the knot at or after it). Comparisons use it honestly:

* :func:`ks_bounds` gives ``lo <= D_exact <= hi``. The KS statistic we report is ``lo``: the
  largest distance the two sets of knots *prove*. Linear interpolation (values uniform inside a
  bin) would invent a distance of up to one bin's mass wherever one side has an atom inside a
  bin the other side knows exactly (a Poisson count's reference jumps at 1, its sketch spreads
  the same atom over ``(0.978, 1]``), which is how healthy discrete features used to look
  drifted. ``hi - lo`` is the error bound.
* :func:`wasserstein_bounds` gives ``lo <= W_exact <= hi``; the reported W1 is the integral of
  the linearly interpolated CDFs (it lies inside the bounds; an atom misplaced inside a bucket
  of width ``w`` moves W by at most ``mass * w``). The error bound is ``max(hi - W, W - lo)``.

Example:
    >>> import numpy as np
    >>> a = Knots.from_sorted(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    >>> b = Knots.from_sorted(np.array([2.0, 3.0, 4.0, 5.0]), np.array([2.0, 3.0, 4.0, 5.0]))
    >>> ks_bounds(a, b), round(wasserstein(a, b), 9)  # raw samples: exactly 0.25 and 1.0
    ((0.25, 0.25), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from infersight.stats.sketch import ExpHistogram

__all__ = ["Knots", "ks", "ks_bounds", "wasserstein", "wasserstein_bounds", "distances", "bin_probs", "below"]

Arr = npt.NDArray[np.float64]


def below(x: npt.ArrayLike) -> Arr:
    """The largest float smaller than ``x``: ``P(X <= below(a)) = P(X < a)`` exactly."""
    return np.nextafter(np.asarray(x, np.float64), -np.inf)


@dataclass
class Knots:
    x: Arr
    F: Arr
    n: int

    @classmethod
    def from_counts(
        cls, x: npt.ArrayLike, counts: npt.ArrayLike, n: int, lo: float | None = None, hi: float | None = None
    ) -> Knots:
        """Knots from exact ``(x, count of values <= x)`` pairs in any order.

        ``lo``/``hi`` (the minimum and maximum) add the anchors ``(below(lo), 0)`` and
        ``(hi, n)`` and drop points outside them. Points at the same ``x`` must agree; if
        sources disagree (they are not of the same data) the CDF is made monotone.
        """
        xs = np.asarray(x, np.float64).ravel()
        cs = np.asarray(counts, np.float64).ravel()
        if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
            start = float(below(lo))
            inside = (xs > start) & (xs < hi)
            xs = np.concatenate([[start], xs[inside], [hi]])
            cs = np.concatenate([[0.0], cs[inside], [float(n)]])
        order = np.lexsort((cs, xs))
        xs, cs = xs[order], np.maximum.accumulate(cs[order])
        keep = np.append(xs[1:] != xs[:-1], True)  # the same x twice: keep the larger count
        return cls(xs[keep], cs[keep] / max(n, 1), int(n))

    @classmethod
    def from_sorted(cls, xs: Arr, at: npt.ArrayLike) -> Knots:
        """Exact empirical CDF of sorted values ``xs`` at ``at`` and just below each point of
        ``at`` (so every jump at those points is seen), anchored at min and max."""
        if xs.size == 0:
            return cls(np.zeros(0), np.zeros(0), 0)
        pts = np.asarray(at, np.float64).ravel()
        pts = np.concatenate([pts, below(pts)])
        return cls.from_counts(pts, np.searchsorted(xs, pts, side="right"), int(xs.size), float(xs[0]), float(xs[-1]))

    @classmethod
    def from_sketch(cls, s: ExpHistogram) -> Knots:
        """Exact knots at the bucket boundaries of an OTel exponential histogram.

        Positive buckets are ``(lo, hi]``: counts up to ``hi`` are exact at ``hi``. Negative
        buckets hold ``[-hi, -lo)``, so their cumulative counts are the share strictly below
        ``-lo``, i.e. exact at ``below(-lo)``. Zeros are an atom at 0. Anchored at min/max.
        """
        if s.count == 0:
            return cls(np.zeros(0), np.zeros(0), 0)
        xs: list[Arr] = []
        cs: list[Arr] = []
        done = 0.0
        if not s.negative.empty:
            idx = np.arange(s.negative.last, s.negative.offset - 1, -1)  # most negative first
            lo, hi = s.bucket_bounds(idx)
            counts = s.negative.counts[::-1].astype(np.float64)
            xs += [below(-hi[:1]), below(-lo)]
            cs += [np.zeros(1), np.cumsum(counts)]
            done = float(counts.sum())
        if s.zero_count:
            xs.append(np.array([below(0.0), 0.0]))
            cs.append(np.array([done, done + s.zero_count]))
            done += s.zero_count
        if not s.positive.empty:
            idx = np.arange(s.positive.offset, s.positive.last + 1)
            lo, hi = s.bucket_bounds(idx)
            xs += [lo[:1], hi]
            cs += [np.array([done]), done + np.cumsum(s.positive.counts.astype(np.float64))]
        return cls.from_counts(np.concatenate(xs), np.concatenate(cs), s.count, s.min, s.max)

    def at(self, q: npt.ArrayLike) -> Arr:
        """Linear interpolation between knots (the uniform-in-bin estimate)."""
        return np.interp(np.asarray(q, dtype=np.float64), self.x, self.F, left=0.0, right=1.0)

    def lower(self, q: npt.ArrayLike) -> Arr:
        """The least the true CDF can be at ``q``: F of the last knot at or before ``q``."""
        # F with 0 in front: the knot count at or before q indexes it directly (0 before all).
        return np.asarray(np.concatenate(([0.0], self.F))[np.searchsorted(self.x, q, side="right")])

    def upper(self, q: npt.ArrayLike) -> Arr:
        """The most the true CDF can be at ``q``: F of the first knot at or after ``q``."""
        return np.asarray(np.append(self.F, 1.0)[np.searchsorted(self.x, q, side="left")])

    def mass_at_most(self, v: float) -> float:
        """An upper bound on ``P(X == v)`` (exact where ``v`` and ``below(v)`` are knots)."""
        return float(self.upper(v) - self.lower(below(v)))


def _envelopes(a: Knots, b: Knots) -> tuple[Arr, Arr, Arr, Arr, Arr]:
    u = np.union1d(a.x, b.x)
    return u, a.lower(u), a.upper(u), b.lower(u), b.upper(u)


def ks_bounds(a: Knots, b: Knots) -> tuple[float, float]:
    """``(lo, hi)`` with ``lo <= sup|Fa - Fb| <= hi`` for any CDFs through both sets of knots."""
    if a.n == 0 or b.n == 0:
        return float("nan"), float("nan")
    return _ks_from(*_envelopes(a, b))


def _ks_from(u: Arr, la: Arr, ua: Arr, lb: Arr, ub: Arr) -> tuple[float, float]:
    # At a union point each side is an interval; between two union points the lower envelope
    # keeps its left value and the upper one takes its right value (the gap can only widen),
    # unless no float lies between them (a knot and the one just below it).
    lo = max(0.0, float(np.max(la - ub)), float(np.max(lb - ua)))
    hi = max(float(np.max(ua - lb)), float(np.max(ub - la)))
    room = np.nextafter(u[:-1], np.inf) < u[1:]
    if room.any():
        hi = max(hi, float(np.max((ua[1:] - lb[:-1])[room])), float(np.max((ub[1:] - la[:-1])[room])))
    # Beyond the outermost union point both sides are anchored (0 below, 1 at the maximum).
    return lo, max(hi, lo)


def ks(a: Knots, b: Knots) -> float:
    """Kolmogorov–Smirnov distance proven by two sets of knots (the lower bound)."""
    return ks_bounds(a, b)[0]


def wasserstein(a: Knots, b: Knots) -> float:
    """``∫|Fa - Fb| dx`` for the linearly interpolated CDFs (exact for them)."""
    if a.n == 0 or b.n == 0:
        return float("nan")
    u = np.union1d(a.x, b.x)
    return float(abs_linear_integral(u, (a.at(u) - b.at(u))[None, :])[0])


def wasserstein_bounds(a: Knots, b: Knots) -> tuple[float, float]:
    """``(lo, hi)`` with ``lo <= ∫|Fa - Fb| dx <= hi`` for any CDFs through both sets of knots.

    Both sets are anchored (F = 0 below the minimum, 1 at the maximum), so only the finite
    intervals between union points contribute.
    """
    if a.n == 0 or b.n == 0:
        return float("nan"), float("nan")
    return _wasserstein_from(*_envelopes(a, b))


def _wasserstein_from(u: Arr, la: Arr, ua: Arr, lb: Arr, ub: Arr) -> tuple[float, float]:
    h = np.diff(u)
    gap_lo = np.maximum(np.maximum(la[:-1] - ub[1:], lb[:-1] - ua[1:]), 0.0)
    gap_hi = np.maximum(ua[1:] - lb[:-1], ub[1:] - la[:-1])
    return float(np.sum(gap_lo * h)), float(np.sum(gap_hi * h))


def distances(a: Knots, b: Knots) -> tuple[float, float, float, float, float]:
    """:func:`ks_bounds`, :func:`wasserstein` and :func:`wasserstein_bounds` in one pass over
    the union of both sets of knots (what the default numeric policy needs, at half the cost
    of asking for each): ``(ks_lo, ks_hi, w, w_lo, w_hi)``, the same numbers.

    >>> a = Knots.from_sorted(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    >>> b = Knots.from_sorted(np.array([2.0, 3.0, 4.0, 5.0]), np.array([2.0, 3.0, 4.0, 5.0]))
    >>> distances(a, b) == (*ks_bounds(a, b), wasserstein(a, b), *wasserstein_bounds(a, b))
    True
    """
    if a.n == 0 or b.n == 0:
        return (float("nan"),) * 5
    env = _envelopes(a, b)
    u = env[0]
    w = float(abs_linear_integral(u, (a.at(u) - b.at(u))[None, :])[0])
    return (*_ks_from(*env), w, *_wasserstein_from(*env))


def abs_linear_integral(x: Arr, d: Arr) -> Arr:
    """``∫|d|`` for rows of a function linear between points ``x`` (exact at sign changes)."""
    h = np.diff(x)
    d0, d1 = d[:, :-1], d[:, 1:]
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = np.where(a0 + a1 > 0, (d0 * d0 + d1 * d1) / (2 * (a0 + a1)), 0.0)
    return np.sum(np.where(same, (a0 + a1) / 2, cross) * h, axis=1)


def bin_probs(k: Knots, edges: Arr, toward: Arr | None = None) -> Arr:
    """Mass in ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    Where ``k`` is not known exactly at an edge, the CDF there is linearly interpolated, or —
    with ``toward`` (the other distribution's CDF at the edges) — taken as the value inside
    ``k``'s envelope closest to ``toward``: the smallest difference the knots allow.
    """
    if toward is None:
        f = k.at(edges)
    else:
        f = np.clip(toward, k.lower(edges), k.upper(edges))
    return np.diff(np.concatenate([[0.0], f, [1.0]]))
