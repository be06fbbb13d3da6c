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

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight._extension import speedups as _ext
from infersight.stats.sketch import ExpHistogram

__all__ = [
    "Knots",
    "KnotsBatch",
    "ks",
    "ks_bounds",
    "wasserstein",
    "wasserstein_bounds",
    "distances",
    "distances_batch",
    "bin_probs",
    "below",
]

Arr = npt.NDArray[np.float64]

# distances_batch in C (one merge per pair), or None: the numpy sweep below is its reference.
_c_knot_distances: Any = getattr(_ext, "knot_distances", None)
# the knots of KnotsBatch.from_sketches in C (past the bucket bounds numpy computes), or None
_c_sketch_knots: Any = getattr(_ext, "sketch_knots", None)
# why from_sketches refuses a batch, by the C code's answer
_REFUSED = {
    -1: "KnotsBatch.from_sketches needs whole, non-negative bucket counts",
    -2: "KnotsBatch.from_sketches: a sketch's buckets do not add up to its count",
    -3: "KnotsBatch.from_sketches: a sketch's bucket bounds are not increasing",
}


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


@dataclass
class KnotsBatch:
    """Many sets of :class:`Knots` in flat arrays, one segment after another: ``x`` and ``F``
    of every set, ``starts[i]:starts[i + 1]`` the knots of set ``i``, ``n`` their counts.

    What :func:`distances_batch` compares, so that the processor scores every numeric feature
    of a window with a handful of numpy calls instead of dozens per feature.

    >>> a = Knots.from_sorted(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    >>> b = KnotsBatch.of([a, a])
    >>> b.starts.tolist(), b.get(1) == a
    ([0, 4, 8], True)
    """

    x: Arr
    F: Arr
    starts: npt.NDArray[np.intp]
    n: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.n.size)

    @classmethod
    def of(cls, knots: list[Knots]) -> KnotsBatch:
        sizes = np.array([k.x.size for k in knots], np.intp)
        starts = np.zeros(len(knots) + 1, np.intp)
        np.cumsum(sizes, out=starts[1:])
        x = np.concatenate([k.x for k in knots]) if knots else np.zeros(0)
        f = np.concatenate([k.F for k in knots]) if knots else np.zeros(0)
        return cls(x, f, starts, np.array([k.n for k in knots], np.int64))

    def get(self, i: int) -> Knots:
        a, b = int(self.starts[i]), int(self.starts[i + 1])
        return Knots(self.x[a:b], self.F[a:b], int(self.n[i]))

    @classmethod
    def from_sketches(cls, sketches: list[ExpHistogram]) -> KnotsBatch:
        """:meth:`Knots.from_sketch` of each sketch, all at once: the same knots.

        Every sketch must hold values (``count > 0``) with finite ``min`` and ``max``, whole
        bucket counts adding up to its count, and increasing bucket bounds; ``ValueError``
        otherwise (score such a sketch one at a time).
        """
        # The pieces from_sketch concatenates, per sketch in the same order, as (x, count) runs:
        # [below(-hi_first), below(-lo)...] for negatives, [below(0), 0] for zeros,
        # [lo_first, hi...] for positives; then from_counts' anchors at min and max.
        k = len(sketches)
        counts: list[npt.NDArray[np.int64]] = []
        rows: list[tuple[int, int, int, int, int, float, float]] = []
        for s in sketches:
            c, lo_v, hi_v = s.count, s.min, s.max
            if c <= 0 or not (math.isfinite(lo_v) and math.isfinite(hi_v)):
                raise ValueError(f"KnotsBatch.from_sketches needs sketches with values and finite min/max; got {s!r}")
            neg, pos = s.negative.counts, s.positive.counts
            nn, npos = neg.size, pos.size
            if nn:
                counts.append(neg[::-1])
            if npos:
                counts.append(pos)
            rows.append((nn, npos, s.negative.offset, s.positive.offset, s.scale, float(s.zero_count), float(c)))
        info = np.array(rows, np.float64).reshape(k, 7)
        nn_a = info[:, 0].astype(np.intp)
        np_a = info[:, 1].astype(np.intp)
        zc = info[:, 5]
        cnt = np.concatenate(counts).astype(np.float64) if counts else np.zeros(0)
        # bucket indices: negatives from the last (most negative) down, positives up
        nb_a = nn_a + np_a
        blocks = np.stack([nn_a, np_a], axis=1).ravel()
        bases = np.stack([info[:, 2] + info[:, 0] - 1, info[:, 3]], axis=1).ravel()
        signs = np.tile([-1.0, 1.0], k)
        bstarts = np.zeros(blocks.size + 1, np.intp)
        np.cumsum(blocks, out=bstarts[1:])
        local = np.arange(cnt.size) - np.repeat(bstarts[:-1], blocks)
        idx = np.repeat(bases, blocks) + np.repeat(signs, blocks) * local
        wid = np.repeat(np.ldexp(1.0, -info[:, 4].astype(np.int64)), nb_a)
        lo, hi = np.exp2(idx * wid), np.exp2((idx + 1) * wid)
        mins = np.array([s.min for s in sketches], np.float64)
        maxs = np.array([s.max for s in sketches], np.float64)
        if _c_sketch_knots is not None:
            ox = np.empty(cnt.size + 6 * k)
            of = np.empty(ox.size)
            ostarts = np.empty(k + 1, np.intp)
            got = _c_sketch_knots(cnt, info, lo, hi, mins, maxs, ox, of, ostarts)
            if got is not None:
                if got < 0:
                    raise ValueError(_REFUSED[got])
                return cls(ox[:got], of[:got], ostarts, info[:, 6].astype(np.int64))
        if not np.all(cnt == np.round(cnt)) or np.any(cnt < 0):
            raise ValueError(_REFUSED[-1])
        held = np.concatenate([[0.0], np.cumsum(cnt)])[np.append(0, np.cumsum(nb_a))]
        if np.any(np.diff(held) + zc != info[:, 6]):
            raise ValueError(_REFUSED[-2])
        nz_a = (zc != 0).astype(np.intp)
        # Per sketch the raw knots are: negatives (1 + nn), zeros (2 or 0), positives (1 + npos).
        has_n, has_p = nn_a > 0, np_a > 0
        raw = nn_a + has_n + 2 * nz_a + np_a + has_p
        rstart = np.zeros(k + 1, np.intp)
        np.cumsum(raw, out=rstart[1:])
        total = int(rstart[-1])
        xs = np.empty(total)
        cs = np.empty(total)
        # bucket positions in the flat lo/hi arrays
        bstart = np.zeros(k + 1, np.intp)
        np.cumsum(nn_a + np_a, out=bstart[1:])
        # cumulative counts per sketch: cumsum within each run of buckets (whole counts: exact)
        seg_of_bucket = np.repeat(np.arange(k), nn_a + np_a)
        csum = np.cumsum(cnt)
        before = np.concatenate([[0.0], csum])[bstart[:-1]]
        within = csum - before[seg_of_bucket]  # running count inside the sketch, negatives first
        neg_total = np.where(has_n, within[np.maximum(bstart[:-1] + nn_a - 1, 0)] if cnt.size else 0.0, 0.0)
        # negatives: x = below(-hi_first) (count 0), below(-lo) (running count)
        is_neg_b = np.arange(cnt.size) < (bstart[:-1] + nn_a)[seg_of_bucket] if cnt.size else np.zeros(0, bool)
        raw_of_bucket = rstart[:-1][seg_of_bucket] + np.arange(cnt.size) - bstart[:-1][seg_of_bucket]
        # positives sit after the negative block (1 + nn), the zero pair (2 if any) and their own
        # first knot (1)
        pos_b = raw_of_bucket + np.where(is_neg_b, 1, (has_n + 2 * nz_a + 1)[seg_of_bucket])
        nb = ~is_neg_b
        xs[pos_b[is_neg_b]] = below(-lo[is_neg_b])
        cs[pos_b[is_neg_b]] = within[is_neg_b]
        xs[pos_b[nb]] = hi[nb]
        cs[pos_b[nb]] = within[nb] + zc[seg_of_bucket[nb]]
        # first knot of the negative block
        first_neg = rstart[:-1][has_n]
        xs[first_neg] = below(-hi[bstart[:-1][has_n]])
        cs[first_neg] = 0.0
        # zero pair
        zpos = (rstart[:-1] + nn_a + has_n)[nz_a > 0]
        xs[zpos] = below(0.0)
        xs[zpos + 1] = 0.0
        cs[zpos] = neg_total[nz_a > 0]
        cs[zpos + 1] = neg_total[nz_a > 0] + zc[nz_a > 0]
        # first knot of the positive block: lo of the first positive bucket, count so far
        ppos = (rstart[:-1] + nn_a + has_n + 2 * nz_a)[has_p]
        xs[ppos] = lo[(bstart[:-1] + nn_a)[has_p]]
        cs[ppos] = (neg_total + zc)[has_p]
        # from_counts with the anchors (below(min), 0) and (max, n), points outside dropped
        n = info[:, 6].astype(np.int64)
        seg = np.repeat(np.arange(k), raw)
        start = below(mins)
        inside = (xs > start[seg]) & (xs < maxs[seg])
        xs, cs, seg = xs[inside], cs[inside], seg[inside]
        # each sketch's knots as [below(min), inside..., max]: in order as built (bucket bounds
        # rise, counts do not fall), so from_counts' sort, running maximum and de-duplication
        # change nothing (checked)
        per = np.bincount(seg, minlength=k) + 2
        out_start = np.zeros(k + 1, np.intp)
        np.cumsum(per, out=out_start[1:])
        kept_before = np.zeros(k + 1, np.intp)
        np.cumsum(per - 2, out=kept_before[1:])
        pos = out_start[:-1][seg] + 1 + np.arange(xs.size) - kept_before[:-1][seg]
        size = int(out_start[-1])
        ox, oc = np.empty(size), np.empty(size)
        ox[pos], oc[pos] = xs, cs
        ox[out_start[:-1]], oc[out_start[:-1]] = start, 0.0
        ox[out_start[1:] - 1], oc[out_start[1:] - 1] = maxs, n
        oseg = np.repeat(np.arange(k), per)
        first = np.zeros(size, bool)
        first[out_start[:-1]] = True
        step_x, step_c = np.diff(ox), np.diff(oc)
        if np.all((step_x > 0) & (step_c >= 0) | first[1:]):
            f = oc / np.maximum(n, 1)[oseg]
            return cls(ox, f, out_start, n)
        # bucket bounds that do not rise (a scale beyond float resolution): one at a time
        raise ValueError(_REFUSED[-3])


def _side(
    px: Arr,
    other: KnotsBatch,
    count: npt.NDArray[np.intp],
    eq: npt.NDArray[np.bool_],
    seg: npt.NDArray[np.intp],
    n_in: npt.NDArray[np.intp],
) -> tuple[Arr, Arr, Arr]:
    """``other``'s lower and upper envelope and np.interp value at points ``px``, given how many
    of its knots are at or before each point (``count``) and which points are its knots (``eq``);
    ``n_in`` is the number of knots in each of its sets."""
    g = other.starts[:-1][seg] + count  # other's first knot after the point
    x, f = other.x, other.F
    gp = np.maximum(g - 1, 0)
    gn = np.minimum(g, x.size - 1)
    before = count > 0
    lower = np.where(before, f[gp], 0.0)
    up = g - eq
    upper = np.where(count - eq < n_in[seg], f[np.minimum(up, x.size - 1)], 1.0)
    inner = before & (count < n_in[seg]) & ~eq
    x0 = x[gp]
    with np.errstate(all="ignore"):  # only where masked below: outside the other set
        lin = (f[gn] - lower) / (x[gn] - x0) * (px - x0) + lower
    at = np.where(inner, lin, lower)
    right = np.flatnonzero((count == n_in[seg]) & ~eq)  # beyond the other set's maximum
    at[right] = 1.0
    return lower, upper, at


def distances_batch(a: KnotsBatch, b: KnotsBatch) -> Arr:
    """:func:`distances` of ``a.get(i)`` and ``b.get(i)`` for every ``i``, as rows
    ``(ks_lo, ks_hi, w, w_lo, w_hi)``: the same numbers (maxima exactly, sums to rounding).

    Every set must have values (``n > 0``) and at least two knots (every set of knots built
    from data has: the minimum's anchor and the maximum).

    With the C extension (:mod:`infersight._extension`) each pair is one merge of its two sets
    in C; without it (``INFERSIGHT_PURE_PYTHON=1``) a numpy sweep over all pairs at once, the
    reference the C code is tested against.

    >>> x = Knots.from_sorted(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    >>> y = Knots.from_sorted(np.array([2.0, 3.0, 4.0, 5.0]), np.array([2.0, 3.0, 4.0, 5.0]))
    >>> distances_batch(KnotsBatch.of([x, y]), KnotsBatch.of([y, y])).round(9).tolist()[0] == list(distances(x, y))
    True
    """
    k = len(a)
    if len(b) != k:
        raise ValueError(f"distances_batch compares sets pairwise; got {k} and {len(b)} sets")
    if k == 0:
        return np.zeros((0, 5))
    if np.any(a.n <= 0) or np.any(b.n <= 0):
        raise ValueError("distances_batch needs sets with values (n > 0); an empty one has no distance (NaN)")
    sa, sb = a.starts, b.starts
    size_a, size_b = np.diff(sa), np.diff(sb)
    if np.any(size_a < 2) or np.any(size_b < 2):
        raise ValueError("distances_batch needs at least two knots per set (below the minimum, the maximum)")
    if _c_knot_distances is not None:
        out = np.empty((k, 5))
        c = np.ascontiguousarray
        if _c_knot_distances(
            c(a.x, np.float64),
            c(a.F, np.float64),
            c(sa, np.intp),
            c(b.x, np.float64),
            c(b.F, np.float64),
            c(sb, np.intp),
            out,
        ):
            return out
    return _distances_sweep(a, b)


def _distances_sweep(a: KnotsBatch, b: KnotsBatch) -> Arr:
    """:func:`distances_batch` in numpy (the C extension's reference), for checked arguments."""
    k = len(a)
    sa, sb = a.starts, b.starts
    size_a, size_b = np.diff(sa), np.diff(sb)
    ax, af, bx, bf = a.x, a.F, b.x, b.F
    na, nb = ax.size, bx.size
    # how many of b's knots are at or before each knot of a (the only loop: one call per set)
    le = np.empty(na, np.intp)
    for i in range(k):
        le[sa[i] : sa[i + 1]] = np.searchsorted(bx[sb[i] : sb[i + 1]], ax[sa[i] : sa[i + 1]], "right")
    seg_a = np.repeat(np.arange(k), size_a)
    seg_b = np.repeat(np.arange(k), size_b)
    le_g = le + sb[:-1][seg_a]
    eq = (le > 0) & (np.append(bx, np.nan)[le_g - 1] == ax)  # a's knot is one of b's too
    lt_g = le_g - eq  # b's first knot at or after a's
    # the same counts the other way round, from these (integers: one global search each)
    ib = np.arange(nb)
    a_le = np.searchsorted(lt_g, ib, "right") - sa[:-1][seg_b]  # a's knots at or before b's
    a_lt = np.searchsorted(le_g, ib, "right") - sa[:-1][seg_b]  # a's knots before b's
    dup = a_le > a_lt
    la_b, ua_b, ata_b = _side(bx, a, a_le, dup, seg_b, size_a)
    lb_a, ub_a, atb_a = _side(ax, b, le, eq, seg_a, size_b)
    # the union of both sets of knots, set after set, in order (a's knot stands for a tie)
    cum_eq = np.zeros(na + 1, np.intp)
    np.cumsum(eq, out=cum_eq[1:])
    cum_dup = np.zeros(nb + 1, np.intp)
    np.cumsum(dup, out=cum_dup[1:])
    pos_a = np.arange(na) + lt_g - cum_eq[:-1]
    keep = np.flatnonzero(~dup)
    pos_b = keep + (a_lt + sa[:-1][seg_b])[keep] - cum_dup[keep]
    nu = na + nb - int(cum_dup[-1])
    ustarts = sa[:-1] + sb[:-1] - cum_eq[sa[:-1]]
    u = np.empty(nu)
    u[pos_a], u[pos_b] = ax, bx[keep]
    la = np.empty(nu)
    la[pos_a], la[pos_b] = af, la_b[keep]
    ua = np.empty(nu)
    ua[pos_a], ua[pos_b] = af, ua_b[keep]
    lb = np.empty(nu)
    lb[pos_a], lb[pos_b] = lb_a, bf[keep]
    ub = np.empty(nu)
    ub[pos_a], ub[pos_b] = ub_a, bf[keep]
    d = np.empty(nu)
    d[pos_a], d[pos_b] = af - atb_a, (ata_b - bf)[keep]
    # KS bounds at the union points (see _ks_from)
    lo = np.maximum.reduceat(np.maximum(la - ub, lb - ua), ustarts)
    np.maximum(lo, 0.0, out=lo)
    hi = np.maximum.reduceat(np.maximum(ua - lb, ub - la), ustarts)
    # between consecutive union points j, j + 1 (the pair that straddles two sets: h = 0)
    cross = ustarts[1:] - 1
    h = u[1:] - u[:-1]
    h[cross] = 0.0
    la0, lb0, ua1, ub1 = la[:-1], lb[:-1], ua[1:], ub[1:]
    gap_hi = np.maximum(ua1 - lb0, ub1 - la0)
    room = np.nextafter(u[:-1], np.inf) < u[1:]
    room[cross] = False
    hi = np.maximum(hi, np.maximum.reduceat(np.where(room, gap_hi, -np.inf), ustarts))
    np.maximum(hi, lo, out=hi)
    # Wasserstein bounds (see _wasserstein_from)
    gap_lo = np.maximum(la0 - ub1, lb0 - ua1)
    np.maximum(gap_lo, 0.0, out=gap_lo)
    w_lo = np.add.reduceat(gap_lo * h, ustarts)
    w_hi = np.add.reduceat(gap_hi * h, ustarts)
    # W1 of the interpolated CDFs (see abs_linear_integral)
    d0, d1 = d[:-1], d[1:]
    ad = np.abs(d)
    s = ad[:-1] + ad[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cross_w = (d0 * d0 + d1 * d1) / (2 * s)
    piece = np.where(d0 * d1 >= 0, s / 2, cross_w) * h
    w = np.add.reduceat(piece, ustarts)
    return np.stack([lo, hi, w, w_lo, w_hi], axis=1)
