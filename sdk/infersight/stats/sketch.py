"""Mergeable exponential-histogram sketches that follow the OpenTelemetry specification.

A sketch summarises a stream of numbers in at most ``max_size`` buckets per sign. Bucket ``i``
at scale ``s`` covers ``(base**i, base**(i+1)]`` with ``base = 2 ** (2 ** -s)``: the layout of
the OTel data model's ``ExponentialHistogram``, so a sketch built here merges with any OTel
exponential histogram, and the processor can merge windows (minute → hour) and replicas
(pod A + pod B) without ever seeing raw values.

Why not ``Histogram.record`` per value: a 1000 × 50 batch would be 50,000 Python calls on the
request path. Here a whole column is bucketed in a few numpy operations, or, where the optional
C extension is built, in numpy's log and one C pass that gives the same buckets (the numpy
code is the reference it is tested against, value for value).

Each value's index is the one the OTel SDK's own mapping gives it (its C library's log, exact
powers of two); that mapping is not monotone within a hair of a boundary (the float just below
``2**k`` lands above ``2**k``), so the index range, and the scale, come from the indices.

Example:
    >>> import numpy as np
    >>> s = ExpHistogram.from_values(np.array([1.0, 2.0, 3.0]))
    >>> s.count, s.sum, s.min, s.max
    (3, 6.0, 1.0, 3.0)
    >>> s.merge(ExpHistogram.from_values(np.array([4.0]))).count
    4
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight._extension import speedups as _ext

__all__ = ["Buckets", "ExpHistogram", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_SCALE"]

DEFAULT_MAX_SIZE = 160  # the OTel SDK's default bucket count per sign
DEFAULT_MAX_SCALE = 20  # the OTel SDK's maximum scale
MIN_SCALE = -10

# The C extension's :meth:`ExpHistogram._sketch_rows` (None where not built or turned off);
# the numpy code there is the reference it follows, index for index.
_c_sketch_rows: Any = getattr(_ext, "sketch_rows", None)

_MIN_NORMAL = 2.2250738585072014e-308  # smallest positive normal float64
_MIN_NORMAL_EXPONENT = -1022
_MAX_NORMAL_EXPONENT = 1023


def _indices_at_scale(
    values: npt.NDArray[np.float64],
    scale: int,
    scratch: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None,
    extremes: tuple[float, float] | None = None,
) -> npt.NDArray[np.int64]:
    """Bucket index of each (positive, finite) value at ``scale``, as the OTel SDK maps it.

    Exact powers of two and subnormals are special-cased as the spec (and the OTel SDK's
    LogarithmMapping / ExponentMapping) do; everything else is ``floor(log(v) * 2**s / ln 2)``
    for positive scales and the IEEE exponent shifted right for scales <= 0.

    The logarithm is the C library's (``math.log``, what the OTel Python SDK calls) wherever
    it matters: numpy's own ``log`` (SIMD on most machines) differs from it in the last bit
    for about one value in a thousand, which moves the floor only for a value within a hair
    of a bucket boundary. Such values (index fraction within :data:`_NEAR` of an integer,
    about two in 100,000 of arbitrary data) are mapped again with ``math.log``, so this
    mapping, the C extension's and the OTel SDK's give the same index for every float.

    The mapping is not monotone at those boundaries (the float just below ``2**k`` may land
    in the bucket above ``2**k``'s, which is what the SDK does too): index ranges must come
    from the indices, not from the smallest and largest value.

    ``scratch`` (two float buffers and one int buffer shaped like ``values``) avoids fresh
    allocations, whose page faults cost more than the arithmetic on a large batch.
    ``extremes`` (smallest and largest value, when the caller knows them) saves two passes.
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    if scale > 0:
        factor = math.ldexp(1.0 / math.log(2.0), scale)
        y, fl, idx = (
            scratch
            if scratch is not None
            else (np.empty(values.shape), np.empty(values.shape), np.empty(values.shape, np.int64))
        )
        with np.errstate(divide="ignore"):
            np.log(values, out=y)
        y *= factor
        np.floor(y, out=fl)
        np.copyto(idx, fl, casting="unsafe")  # floored already: truncation is exact
        # |fraction - 0.5| > 0.5 - _NEAR: the index is within _NEAR of a boundary
        np.subtract(y, fl, out=y)
        y -= 0.5
        np.abs(y, out=y)
        near = np.flatnonzero(y > 0.5 - _NEAR)
        if near.size:
            flat_v, flat_i = values.ravel(), idx.ravel()
            b = bits.ravel()[near]
            near = near[np.bitwise_and(b, _MANTISSA_MASK) != 0]  # powers of two are set below
            log = math.log
            for at, v in zip(near.tolist(), flat_v[near].tolist()):
                if v > _MIN_NORMAL:
                    flat_i[at] = math.floor(log(v) * factor)
        # Exact powers of two have an index the spec fixes as (exponent << scale) - 1, which the
        # logarithm may miss by rounding: find them by their empty mantissa and set it exactly.
        p2 = np.flatnonzero(np.bitwise_and(bits, _MANTISSA_MASK) == 0)
        if p2.size:
            b = bits.ravel()[p2]
            idx.ravel()[p2] = (((b >> 52) - 1023) << scale) - 1
        lo, hi = extremes if extremes is not None else ((values.min(), values.max()) if values.size else (1.0, 1.0))
        if hi >= _NEAR_MAX:
            np.minimum(idx, ((_MAX_NORMAL_EXPONENT + 1) << scale) - 1, out=idx)
        if lo <= _MIN_NORMAL:
            idx[values <= _MIN_NORMAL] = (_MIN_NORMAL_EXPONENT << scale) - 1
        return idx
    # scale <= 0: index is the exponent, minus one for exact powers of two, shifted.
    power_of_two = (bits & _MANTISSA_MASK) == 0
    idx = ((bits >> 52) - 1023) - power_of_two.astype(np.int64)
    if values.size and values.min() < _MIN_NORMAL:
        idx[values < _MIN_NORMAL] = _MIN_NORMAL_EXPONENT - 1
    return idx >> (-scale)


def _near_boundary(values: npt.NDArray[np.float64], scale: int) -> npt.NDArray[np.bool_]:
    """Whether each (positive, finite) value sits where :func:`_indices_at_scale` is not
    monotone: within :data:`_NEAR` of a bucket boundary, an exact power of two, or subnormal.
    A batch whose smallest or largest magnitude is such a value may hold another value whose
    index lies outside the two extremes' indices."""
    if scale <= 0:
        return np.zeros(values.shape, np.bool_)
    with np.errstate(divide="ignore"):
        y = np.log(values) * math.ldexp(1.0 / math.log(2.0), scale)
    frac = np.abs(y - np.floor(y) - 0.5)
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    return (frac > 0.5 - 2 * _NEAR) | (np.bitwise_and(bits, _MANTISSA_MASK) == 0) | (values <= _MIN_NORMAL)


class _Scratch(threading.local):
    """Per-thread work buffers for :meth:`ExpHistogram.from_matrix` (bounded size)."""

    # 64k values: 2.5 MB of buffers per thread at most (every thread that sketches keeps its
    # buffers at the largest size it met; 256k values was 10 MB a thread). Bigger inputs are
    # sketched a few features at a time.
    MAX_ELEMENTS = 1 << 16

    def __init__(self) -> None:
        self.size = 0
        self.f: list[npt.NDArray[np.float64]] = []
        self.i: list[npt.NDArray[np.int64]] = []

    def get(self, shape: tuple[int, int]) -> tuple[list[npt.NDArray[np.float64]], list[npt.NDArray[np.int64]]]:
        n = shape[0] * shape[1]
        if n > self.MAX_ELEMENTS:
            return [np.empty(shape) for _ in range(3)], [np.empty(shape, np.int64) for _ in range(2)]
        if n > self.size:
            self.size = max(n, 4096)
            self.f = [np.empty(self.size) for _ in range(3)]
            self.i = [np.empty(self.size, np.int64) for _ in range(2)]
        return [b[:n].reshape(shape) for b in self.f], [b[:n].reshape(shape) for b in self.i]


_scratch = _Scratch()


_MANTISSA_MASK = (1 << 52) - 1
_NEAR_MAX = 2.0**1023
_HALF_MAX = 2.0**1022
_EDGE_GAP = 1e-10  # relative: log's rounding error in a bucket index is below 1e-12 of the value
# In index units: two logarithms (numpy's, the C library's) differ by a few units in the last
# place, under 1e-6 of an index at scale 20 for any float; a value whose index is further than
# this from an integer floors the same with either.
_NEAR = 1e-5
# Relative distance within which two values can both be within _NEAR of the same boundary
# (1e-5 of an index at scale 20 is 7e-12 of the value): a margin of 100 times that.
_NEAR_VALUE = 1e-9


def _scale_changes(
    ends: npt.NDArray[np.int64],
    has_pos: npt.NDArray[np.bool_],
    has_neg: npt.NDArray[np.bool_],
    max_size: int,
    max_scale: int,
) -> npt.NDArray[np.int64]:
    """Per column, how many halvings from ``max_scale`` make both signs fit in ``max_size``
    buckets; ``ends`` holds the four end indices at ``max_scale`` (smallest and largest
    positive magnitude, then smallest and largest negative one), shape ``(4, k)``."""
    change = np.zeros(ends.shape[1], np.int64)
    for lo, hi, present in ((ends[0], ends[1], has_pos), (ends[2], ends[3], has_neg)):
        # (hi >> c) - (lo >> c) is at least (hi - lo) >> c, so no c below this one fits;
        # from there at most a step or two more.
        span = np.where(present, hi - lo, 0)
        c = np.maximum(np.ceil(np.log2((span + 1) / max_size)), 0).astype(np.int64)
        while True:  # smallest c with (hi >> c) - (lo >> c) < max_size, for every column
            need = present & (((hi >> c) - (lo >> c)) >= max_size)
            if not need.any():
                break
            c += need
        np.maximum(change, c, out=change)
    np.minimum(change, max_scale - MIN_SCALE, out=change)
    return change


def _sorted_counts(
    mags: npt.NDArray[np.float64], lo: int, hi: int, scale: int, change: int, sign: float = 1.0
) -> tuple[int, npt.NDArray[np.int64]]:
    """First bucket and counts per bucket ``lo..hi`` (at ``scale - change``) of ascending magnitudes
    ``sign * mags`` (``sign=-1`` reads negative values without copying them); the counts
    :func:`_indices_at_scale` gives when it maps every value.

    Values further than ``_EDGE_GAP`` (relative) from a bucket boundary are placed by their
    position alone, found by ``searchsorted``: the logarithm's rounding error is far smaller
    than that gap. Only the few values close to a boundary are mapped one by one, so the
    result is the per-value mapping's even where rounding puts a value one bucket off or out
    of order (it does, for values a few ulps from a boundary). A check on the values either
    side of each gap falls back to mapping every value if that ever fails.
    """
    n = mags.size
    j = np.arange(lo + 1, hi + 1, dtype=np.int64)  # buckets whose lower boundary lies inside
    with np.errstate(over="ignore", under="ignore"):
        bound = np.exp2((j << change).astype(np.float64) * math.ldexp(1.0, -scale))
    if sign < 0:  # mags descends in sign * mags order: search the reversed view's base
        base = mags[::-1]
        first = n - np.searchsorted(base, -bound * (1 - _EDGE_GAP), side="right")
        past = n - np.searchsorted(base, -bound * (1 + _EDGE_GAP), side="left")
    else:
        first = np.searchsorted(mags, bound * (1 - _EDGE_GAP), side="left")
        past = np.searchsorted(mags, bound * (1 + _EDGE_GAP), side="right")

    def index(at: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return _indices_at_scale(sign * mags[at], scale) >> change

    # subnormals and values near the float maximum are mapped by special cases: map them all
    ok = _MIN_NORMAL < abs(float(mags[0])) and abs(float(mags[-1])) < _NEAR_MAX
    inner = first > 0
    if ok and inner.any():
        ok = bool(np.all(index(first[inner] - 1) < j[inner]))
    outer = past < n
    if ok and outer.any():
        ok = bool(np.all(index(past[outer]) >= j[outer]))
    if ok:
        near = np.flatnonzero(past > first)
        # bucket b holds the values from the end of its lower gap to the start of its upper one
        starts = np.concatenate([[0], past])
        ends = np.concatenate([first, [n]])
        counts = (ends - starts).astype(np.int64)
        if near.size:
            # each distinct value once, weighted by its run: integers sit on boundaries in bulk
            at, runs = [], []
            for i in near.tolist():
                seg = mags[first[i] : past[i]]
                starts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
                at.append(first[i] + starts)
                runs.append(np.diff(np.append(starts, seg.size)))
            idx = index(np.concatenate(at)) - lo
            if idx.min() < 0 or idx.max() > hi - lo:
                ok = False
            else:
                counts += np.bincount(idx, weights=np.concatenate(runs), minlength=hi - lo + 1).astype(np.int64)
        if ok:
            return lo, counts
    idx = _indices_at_scale(np.abs(np.asarray(mags, np.float64)), scale) >> change
    first_used = min(lo, int(idx.min()))  # rounding can put a value below the smallest's bucket
    return first_used, np.bincount(idx - first_used, minlength=hi - first_used + 1).astype(np.int64)


def _total(xs: npt.NDArray[np.float64]) -> float:
    with np.errstate(over="ignore", invalid="ignore"):  # finite values may add up past the float range
        return float(xs.sum())


def _index_range(mags: npt.NDArray[np.float64], scale: int) -> tuple[int, int]:
    """Smallest and largest index of ascending positive ``mags``: the indices of the values
    within :data:`_NEAR_VALUE` of either end (only there can the mapping step out of order)."""
    with np.errstate(over="ignore"):
        lo_end = int(np.searchsorted(mags, mags[0] * (1 + _NEAR_VALUE), side="right"))
    hi_start = int(np.searchsorted(mags, mags[-1] * (1 - _NEAR_VALUE), side="left"))
    ends = []
    for part in (mags[:lo_end], mags[hi_start:]):
        distinct = part[np.concatenate([[True], part[1:] != part[:-1]])]
        ends.append(_indices_at_scale(np.ascontiguousarray(distinct), scale))
    return int(min(ends[0].min(), ends[1].min())), int(max(ends[0].max(), ends[1].max()))


def _scale_change(low: int, high: int, max_size: int) -> int:
    """How many halvings make indices ``low..high`` fit in ``max_size`` buckets."""
    change = 0
    while high - low >= max_size:
        high >>= 1
        low >>= 1
        change += 1
    return change


def _int64s(counts: Any) -> npt.NDArray[np.int64]:
    """Stored bucket counts as an int64 array (an int64 array as it is: decoders hand one over)."""
    if type(counts) is np.ndarray and counts.dtype == np.int64:
        return counts
    return np.asarray(counts if counts is not None else (), np.int64)


@dataclass(slots=True)
class Buckets:
    """Counts for consecutive bucket indices starting at ``offset`` (one sign)."""

    offset: int = 0
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def empty(self) -> bool:
        return self.counts.size == 0

    @property
    def last(self) -> int:
        """Index of the last bucket (``offset - 1`` when empty)."""
        return self.offset + self.counts.size - 1

    def downscale(self, change: int) -> Buckets:
        """Buckets at ``scale - change``: index ``i`` folds into ``i >> change``."""
        if change == 0 or self.empty:
            return Buckets(self.offset, self.counts.copy())
        idx = np.arange(self.offset, self.offset + self.counts.size, dtype=np.int64) >> change
        new_offset = int(idx[0])
        counts = np.bincount(idx - new_offset, weights=self.counts, minlength=0).astype(np.int64)
        return Buckets(new_offset, counts)

    def trimmed(self) -> Buckets:
        """Drop zero buckets at both ends (the OTel SDK never reports them)."""
        nz = np.flatnonzero(self.counts)
        if nz.size == 0:
            return Buckets(0, np.zeros(0, np.int64))
        return Buckets(self.offset + int(nz[0]), self.counts[nz[0] : nz[-1] + 1].copy())


@dataclass(slots=True)
class ExpHistogram:
    """An OTel exponential histogram over finite values (NaN and ±Inf are not counted here;
    the SDK counts them as missing values of kind ``nan`` / ``inf``).

    ``count == zero_count + positive.counts.sum() + negative.counts.sum()`` always holds.
    ``min``/``max`` are ``nan`` while the sketch is empty.
    """

    scale: int = DEFAULT_MAX_SCALE
    zero_count: int = 0
    positive: Buckets = field(default_factory=Buckets)
    negative: Buckets = field(default_factory=Buckets)
    count: int = 0
    sum: float = 0.0
    min: float = math.nan
    max: float = math.nan
    max_size: int = DEFAULT_MAX_SIZE

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_values(
        cls,
        values: npt.ArrayLike,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_scale: int = DEFAULT_MAX_SCALE,
    ) -> ExpHistogram:
        """Sketch a batch of values in one vectorised pass.

        The scale is the largest one (at most ``max_scale``) at which both signs fit in
        ``max_size`` buckets, which is where the OTel SDK ends up after recording the same
        values one by one. Non-finite values are ignored.

        >>> ExpHistogram.from_values([0.0, -1.5, 10.0]).zero_count
        1
        """
        arr = np.asarray(values, dtype=np.float64).ravel()
        return cls.from_matrix(arr[:, None], max_size=max_size, max_scale=max_scale)[0]

    @classmethod
    def from_matrix(
        cls,
        matrix: npt.ArrayLike,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_scale: int = DEFAULT_MAX_SCALE,
    ) -> list[ExpHistogram]:
        """One sketch per column of a 2-D array, all columns bucketed together.

        A 1000 × 50 batch costs a few whole-array numpy passes (one ``log``, a few compares,
        one ``bincount``), not 50 separate sketches. Non-finite values are ignored.

        >>> [s.count for s in ExpHistogram.from_matrix([[1.0, 0.0], [2.0, float("nan")]])]
        [2, 1]
        """
        if max_size < 2:
            raise ValueError(f"max_size={max_size!r} is too small: use at least 2 buckets")
        X = np.asarray(matrix, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"from_matrix needs a 2-D array, got shape {X.shape}")
        n, k = X.shape
        if n == 0 or k == 0:
            return [cls(max_size=max_size) for _ in range(k)]
        # Work feature-major (one row per feature): every per-feature reduction then runs over
        # contiguous memory, an order of magnitude faster than reducing along axis 0. Work
        # arrays come from per-thread scratch buffers: on a 1000 x 50 batch, page faults of
        # fresh allocations would otherwise cost more than the arithmetic.
        bufs = _scratch.get((k, n))
        np.copyto(bufs[0][0], X.T)
        return cls._sketch_rows(bufs, max_size, max_scale)[0]

    @classmethod
    def from_columns(
        cls,
        columns: Sequence[npt.ArrayLike] | npt.NDArray[np.float64],
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_scale: int = DEFAULT_MAX_SCALE,
    ) -> tuple[list[ExpHistogram], npt.NDArray[np.int64]]:
        """One sketch per equally long column, plus each column's NaN count (what a batch of
        named features needs, without first stacking the columns into a matrix).

        >>> sketches, nans = ExpHistogram.from_columns([[1.0, float("nan")], [0.0, 2.0]])
        >>> [s.count for s in sketches], nans.tolist()
        ([1, 2], [1, 0])
        """
        if max_size < 2:
            raise ValueError(f"max_size={max_size!r} is too small: use at least 2 buckets")
        if isinstance(columns, np.ndarray) and columns.ndim == 2:  # one feature per row, e.g. X.T
            k, n = columns.shape
            if n == 0 or k == 0:
                return [cls(max_size=max_size) for _ in range(k)], np.zeros(k, np.int64)
            step = max(1, _Scratch.MAX_ELEMENTS // n)
            if _c_sketch_rows is not None and columns.dtype == np.float64 and columns.flags.c_contiguous:
                done = cls._columns_in_c(columns, step, max_size, max_scale)
                if done is not None:
                    return done
            if k > step:
                # A few features at a time, so the work buffers stay the per-thread scratch ones
                # (a 100,000 x 50 batch at once would take five fresh 40 MB temporaries).
                out: list[ExpHistogram] = []
                nans: list[npt.NDArray[np.int64]] = []
                for at in range(0, k, step):
                    part, part_nans = cls.from_columns(columns[at : at + step], max_size=max_size, max_scale=max_scale)
                    out.extend(part)
                    nans.append(part_nans)
                return out, np.concatenate(nans)
            bufs = _scratch.get((k, n))
            np.copyto(bufs[0][0], columns)
            return cls._sketch_rows(bufs, max_size, max_scale)
        cols = [np.asarray(c, dtype=np.float64).reshape(-1) for c in columns]
        k = len(cols)
        n = cols[0].size if cols else 0
        if any(c.size != n for c in cols):
            raise ValueError(f"from_columns needs equally long columns, got lengths {[c.size for c in cols]}")
        if n == 0 or k == 0:
            return [cls(max_size=max_size) for _ in range(k)], np.zeros(k, np.int64)
        bufs = _scratch.get((k, n))
        for row, col in zip(bufs[0][0], cols):
            np.copyto(row, col)
        return cls._sketch_rows(bufs, max_size, max_scale)

    @classmethod
    def _columns_in_c(
        cls, columns: npt.NDArray[np.float64], step: int, max_size: int, max_scale: int
    ) -> tuple[list[ExpHistogram], npt.NDArray[np.int64]] | None:
        """Feature-major float64 ``columns`` sketched by the C extension straight from where
        they are (it does not write to them, unlike the numpy path, which works on a copy);
        ``step`` features at a time, so the one work buffer (their logs) stays bounded."""
        k, n = columns.shape
        rows = min(step, k)
        logs = _scratch.get((rows, n))[0][1] if rows * n <= _Scratch.MAX_ELEMENTS else np.empty((rows, n))
        out: list[ExpHistogram] = []
        nans: list[npt.NDArray[np.int64]] = []
        for at in range(0, k, step):
            part = columns[at : at + step]
            done = cls._sketch_rows_in_c(part, logs[: part.shape[0]], max_size, max_scale)
            if done is None:
                return None
            out.extend(done[0])
            nans.append(done[1])
        return out, nans[0] if len(nans) == 1 else np.concatenate(nans)

    @classmethod
    def _sketch_rows_in_c(
        cls, T: npt.NDArray[np.float64], logs: npt.NDArray[np.float64], max_size: int, max_scale: int
    ) -> tuple[list[ExpHistogram], npt.NDArray[np.int64]] | None:
        """:meth:`_sketch_rows` by the C extension: numpy's (SIMD) log of the magnitudes into
        ``logs`` (a scratch buffer shaped like ``T``), then one pass in C maps and summarises
        the values and one counts them, the C library's log deciding the few values near a
        bucket boundary, so every index is the one the numpy path gives; ``None`` where the
        extension does not take the batch (a scale outside 1..20)."""
        k, n = T.shape
        np.abs(T, out=logs)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(logs, out=logs)
        stats = np.empty((k, 3))
        ints = np.empty((k, 8), np.int64)
        counts = np.empty((k, 2, max_size + 1), np.int64)
        if _c_sketch_rows(T, logs, n, max_size, max_scale, stats, ints, counts) is None:
            return None
        empty = np.zeros(0, np.int64)
        out: list[ExpHistogram] = []
        for j, ((total, lo, hi), (cnt, zeros, _, change, pos_at, pos_len, neg_at, neg_len)) in enumerate(
            zip(stats.tolist(), ints.tolist())
        ):
            if cnt == 0:
                out.append(cls(max_size=max_size))
                continue
            out.append(
                cls(
                    0 if zeros == cnt else max_scale - change,  # all-zero: scale 0, as the OTel SDK
                    zeros,
                    # views: ``counts`` is this call's own array, never reused
                    Buckets(pos_at, counts[j, 0, :pos_len]) if pos_len else Buckets(0, empty),
                    Buckets(neg_at, counts[j, 1, :neg_len]) if neg_len else Buckets(0, empty),
                    cnt,
                    total,
                    lo,
                    hi,
                    max_size,
                )
            )
        return out, ints[:, 2].copy()

    @classmethod
    def _sketch_rows(
        cls,
        bufs: tuple[list[npt.NDArray[np.float64]], list[npt.NDArray[np.int64]]],
        max_size: int,
        max_scale: int,
    ) -> tuple[list[ExpHistogram], npt.NDArray[np.int64]]:
        """Sketch each row of the first scratch buffer (feature-major values, overwritten)."""
        (T, tmp, tmp2), (idx, itmp) = bufs
        k, n = T.shape
        if _c_sketch_rows is not None:
            done = cls._sketch_rows_in_c(T, tmp, max_size, max_scale)
            if done is not None:
                return done
        finite = np.isfinite(T)
        all_finite = bool(finite.all())
        if all_finite:
            counts = np.full(k, n, np.int64)
            nan_counts = np.zeros(k, np.int64)
        else:
            nan_counts = np.count_nonzero(np.isnan(T), axis=1)
            T[~finite] = 0.0
            counts = finite.sum(axis=1)
        neg = T < 0
        pos = T > 0
        nonzero = pos | neg
        zeros = counts - np.count_nonzero(nonzero, axis=1)
        with np.errstate(over="ignore", invalid="ignore"):  # finite values may add up past the float range
            sums = T.sum(axis=1)
        # Per sign, the index range follows from the smallest and largest magnitude (nearly:
        # see below). The extremes are plain min/max (non-finite values were zeroed); the
        # magnitudes closest to zero need the other sign pushed out of the way, by adding the
        # largest float to it: exact unless that sign holds a magnitude of 2**1022 or more,
        # where the sum lands among real values (then a masked copy, six times slower).
        max_all, min_all = T.max(axis=1), T.min(axis=1)
        has_pos, has_neg = max_all > 0, min_all < 0
        if float(max_all.max()) < _HALF_MAX and float(min_all.min()) > -_HALF_MAX:
            big = np.finfo(np.float64).max
            np.multiply(~pos, big, out=tmp)
            tmp += T
            min_pos = tmp.min(axis=1)
            np.multiply(~neg, big, out=tmp)
            np.subtract(T, tmp, out=tmp)
            max_neg = tmp.max(axis=1)
        else:
            tmp.fill(np.inf)
            np.copyto(tmp, T, where=pos)
            min_pos = tmp.min(axis=1)
            tmp.fill(-np.inf)
            np.copyto(tmp, T, where=neg)
            max_neg = tmp.max(axis=1)
        has_zero = zeros > 0
        mins = np.where(has_neg, min_all, np.where(has_zero, 0.0, min_pos))
        maxs = np.where(has_pos, max_all, np.where(has_zero, 0.0, max_neg))
        present = np.concatenate([has_pos, has_pos, has_neg, has_neg])
        extremes = np.abs(
            np.where(
                present,
                np.concatenate([min_pos, max_all, max_neg, min_all]),
                1.0,
            )
        )
        # Every value gets one slot: (feature, sign, bucket - base); zeros and non-finite values
        # go to a dump slot past the end. One bincount then counts all features at once.
        width = max_size + 1
        all_nonzero = bool(nonzero.all())
        np.abs(T, out=T)  # T is not needed signed any more: reuse it for the magnitudes
        zero = None if all_nonzero else ~nonzero
        if zero is not None:
            np.putmask(T, zero, 1.0)
        # magnitudes span [smallest nonzero |x|, largest |x|], or 1.0 put in for zeros
        mag_lo = min(
            float(np.where(has_pos, min_pos, np.inf).min()),
            float(np.where(has_neg, -max_neg, np.inf).min()),
            1.0 if not all_nonzero else np.inf,
        )
        mag_hi = max(float(max_all.max()), float(-min_all.min()), 1.0)
        idx = _indices_at_scale(T, max_scale, (tmp, tmp2, idx), (mag_lo, mag_hi))
        # Per sign, the index range is that of the extremes' indices, unless an extreme sits
        # where the mapping is not monotone (a boundary, a power of two): then another value
        # close to it may have an index past the extreme's, and that feature's range is read
        # from its indices.
        ends = _indices_at_scale(extremes, max_scale).reshape(4, k)
        odd = np.flatnonzero((_near_boundary(extremes, max_scale) & present).reshape(4, k).any(axis=0))
        for j in odd.tolist():
            for at, sign in ((0, pos[j]), (2, neg[j])):
                used = idx[j][sign]
                if used.size:
                    ends[at, j], ends[at + 1, j] = used.min(), used.max()
        change = _scale_changes(ends, has_pos, has_neg, max_size, max_scale)
        base_pos = np.where(has_pos, ends[0] >> change, 0)
        base_neg = np.where(has_neg, ends[2] >> change, 0)
        idx >>= change[:, None]
        row = np.arange(k, dtype=np.int64) * (2 * width)
        idx += (row - base_pos)[:, None]
        np.multiply(neg, (width + base_pos - base_neg)[:, None], out=itmp)
        idx += itmp
        dump = k * 2 * width
        if zero is not None:
            np.putmask(idx, zero, dump)
        flat = np.bincount(idx.ravel(), minlength=dump + 1)[:dump].reshape(k, 2, width)
        # First and last used bucket per (column, sign), vectorised.
        used = flat != 0
        any_used = used.any(axis=2)
        first = used.argmax(axis=2)
        last = width - 1 - used[:, :, ::-1].argmax(axis=2)
        # Python scalars once per array (not one numpy-scalar conversion per field and feature).
        offsets = (np.stack([base_pos, base_neg], axis=1) + first).tolist()
        any_l, first_l, last_l = any_used.tolist(), first.tolist(), last.tolist()
        counts_l, zeros_l, change_l = counts.tolist(), zeros.tolist(), change.tolist()
        sums_l, mins_l, maxs_l = sums.tolist(), mins.tolist(), maxs.tolist()
        empty = np.zeros(0, np.int64)
        out: list[ExpHistogram] = []
        for j in range(k):
            cnt = counts_l[j]
            if cnt == 0:
                out.append(cls(max_size=max_size))
                continue
            signs = []
            for sgn in (0, 1):
                if any_l[j][sgn]:
                    # a view: ``flat`` is this call's own bincount output, never reused
                    signs.append(Buckets(offsets[j][sgn], flat[j, sgn, first_l[j][sgn] : last_l[j][sgn] + 1]))
                else:
                    signs.append(Buckets(0, empty))
            zc = zeros_l[j]
            out.append(
                cls(
                    0 if zc == cnt else max_scale - change_l[j],  # all-zero: scale 0, as the OTel SDK
                    zc,
                    signs[0],
                    signs[1],
                    cnt,
                    sums_l[j],
                    mins_l[j],
                    maxs_l[j],
                    max_size,
                )
            )
        return out, nan_counts

    @classmethod
    def from_sorted(
        cls,
        xs: npt.NDArray[np.float64],
        *,
        total: float | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        max_scale: int = DEFAULT_MAX_SCALE,
    ) -> ExpHistogram:
        """The sketch :meth:`from_values` gives, for finite values already sorted ascending.

        A reference profile sorts each column anyway; from sorted values the bucket counts
        are bucket boundaries found by binary search, a few hundred logarithms instead of one
        per value. ``total``: ``xs.sum()`` when the caller has it.

        >>> ExpHistogram.from_sorted(np.array([-1.5, 0.0, 10.0])) == ExpHistogram.from_values([0.0, -1.5, 10.0])
        True
        """
        if max_size < 2:
            raise ValueError(f"max_size={max_size!r} is too small: use at least 2 buckets")
        n = int(xs.size)
        if n == 0:
            return cls(max_size=max_size)
        neg_end = int(np.searchsorted(xs, 0.0, side="left"))
        pos_start = int(np.searchsorted(xs, 0.0, side="right"))
        zeros = pos_start - neg_end
        has_pos, has_neg, has_zero = pos_start < n, neg_end > 0, zeros > 0
        min_all, max_all = float(xs[0]), float(xs[-1])
        min_pos = float(xs[pos_start]) if has_pos else 1.0
        max_neg = float(xs[neg_end - 1]) if has_neg else -1.0
        # as from_matrix has them (0.0, never -0.0, for a zero at either end)
        lo_v = min_all if has_neg else (0.0 if has_zero else min_pos)
        hi_v = max_all if has_pos else (0.0 if has_zero else max_neg)
        extremes = np.abs(
            np.array(
                [
                    min_pos if has_pos else 1.0,
                    max_all if has_pos else 1.0,
                    max_neg if has_neg else 1.0,
                    min_all if has_neg else 1.0,
                ]
            )
        )
        ends = _indices_at_scale(extremes, max_scale).reshape(4, 1)
        # Where an extreme sits at a boundary of the (not quite monotone) mapping, the values
        # next to it decide the index range: map those few.
        odd = _near_boundary(extremes, max_scale).tolist()
        if has_pos and (odd[0] or odd[1]):
            ends[0, 0], ends[1, 0] = _index_range(xs[pos_start:], max_scale)
        if has_neg and (odd[2] or odd[3]):
            ends[2, 0], ends[3, 0] = _index_range(-xs[neg_end - 1 :: -1], max_scale)
        change = int(_scale_changes(ends, np.array([has_pos]), np.array([has_neg]), max_size, max_scale)[0])
        e = (ends[:, 0] >> change).tolist()
        positive = Buckets(*_sorted_counts(xs[pos_start:], e[0], e[1], max_scale, change)) if has_pos else Buckets()
        # negative magnitudes ascend from the value nearest zero down to the smallest
        negative = (
            Buckets(*_sorted_counts(xs[neg_end - 1 :: -1], e[2], e[3], max_scale, change, -1.0))
            if has_neg
            else Buckets()
        )
        return cls(
            0 if zeros == n else max_scale - change,
            zeros,
            positive,
            negative,
            n,
            _total(xs) if total is None else float(total),
            lo_v,
            hi_v,
            max_size,
        )

    def copy(self) -> ExpHistogram:
        return ExpHistogram(
            self.scale,
            self.zero_count,
            Buckets(self.positive.offset, self.positive.counts.copy()),
            Buckets(self.negative.offset, self.negative.counts.copy()),
            self.count,
            self.sum,
            self.min,
            self.max,
            self.max_size,
        )

    # -- merging ------------------------------------------------------------------------

    @property
    def has_buckets(self) -> bool:
        return not (self.positive.empty and self.negative.empty)

    def downscale(self, change: int) -> ExpHistogram:
        """The same data at ``scale - change`` (coarser buckets)."""
        out = self.copy()
        if change <= 0:
            return out
        out.scale = self.scale - change
        out.positive = self.positive.downscale(change)
        out.negative = self.negative.downscale(change)
        return out

    def merge(self, other: ExpHistogram) -> ExpHistogram:
        """A new sketch equal to the sketch of both inputs' values together.

        Merging is associative and commutative, so windows and replicas combine in any order.
        """
        return ExpHistogram.merge_all((self, other))

    @staticmethod
    def merge_all(sketches: Iterable[ExpHistogram]) -> ExpHistogram:
        """Merge many sketches at once (one downscale per input instead of one per pair)."""
        given = list(sketches)
        max_size = min((s.max_size for s in given), default=DEFAULT_MAX_SIZE)
        items = [s for s in given if s.count > 0]
        if not items:
            return ExpHistogram(max_size=max_size)
        with_buckets = [s for s in items if s.has_buckets]
        out = ExpHistogram(max_size=max_size)
        out.count = sum(s.count for s in items)
        out.sum = float(sum(s.sum for s in items))
        out.min = float(min(s.min for s in items))
        out.max = float(max(s.max for s in items))
        out.zero_count = sum(s.zero_count for s in items)
        if not with_buckets:
            out.scale = min(s.scale for s in items)
            return out
        scale = min(s.scale for s in with_buckets)
        # Find the extra halving needed so the union of index ranges fits, per sign.
        change = 0
        for sign in ("positive", "negative"):
            parts = [getattr(s, sign).downscale(s.scale - scale) for s in with_buckets]
            parts = [p for p in parts if not p.empty]
            if parts:
                lo = min(p.offset for p in parts)
                hi = max(p.last for p in parts)
                change = max(change, _scale_change(lo, hi, max_size))
        out.scale = scale - change
        for sign in ("positive", "negative"):
            # All parts added into one array (not pairwise, which allocated one per input).
            parts = [getattr(s, sign).downscale(s.scale - out.scale) for s in with_buckets]
            parts = [p for p in parts if not p.empty]
            if not parts:
                setattr(out, sign, Buckets())
                continue
            lo = min(p.offset for p in parts)
            acc = np.zeros(max(p.last for p in parts) - lo + 1, np.int64)
            for p in parts:
                acc[p.offset - lo : p.offset - lo + p.counts.size] += p.counts
            setattr(out, sign, Buckets(lo, acc))
        return out

    def update(self, values: npt.ArrayLike) -> ExpHistogram:
        """Return a sketch of this sketch's data plus ``values`` (self is not modified)."""
        return self.merge(ExpHistogram.from_values(values, max_size=self.max_size))

    # -- reading ------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def bucket_bounds(self, index: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], ...]:
        """Lower and upper boundary of positive bucket(s) ``index`` at this sketch's scale."""
        i = np.asarray(index, dtype=np.float64)
        width = math.ldexp(1.0, -self.scale)
        return np.exp2(i * width), np.exp2((i + 1) * width)

    def to_points(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Representative value (bucket midpoint, geometric for ±buckets) and count per bucket,
        in ascending value order; used for quantiles and distances computed from sketches."""
        vals: list[npt.NDArray[np.float64]] = []
        cnts: list[npt.NDArray[np.int64]] = []
        if not self.negative.empty:
            idx = np.arange(self.negative.offset, self.negative.last + 1)
            lo, hi = self.bucket_bounds(idx)
            vals.append(-np.sqrt(lo * hi)[::-1])
            cnts.append(self.negative.counts[::-1])
        if self.zero_count:
            vals.append(np.zeros(1))
            cnts.append(np.array([self.zero_count], np.int64))
        if not self.positive.empty:
            idx = np.arange(self.positive.offset, self.positive.last + 1)
            lo, hi = self.bucket_bounds(idx)
            vals.append(np.sqrt(lo * hi))
            cnts.append(self.positive.counts)
        if not vals:
            return np.zeros(0), np.zeros(0, np.int64)
        v = np.concatenate(vals)
        c = np.concatenate(cnts)
        if self.count:
            np.clip(v, self.min, self.max, out=v)
        return v, c

    def quantile(self, q: float | npt.ArrayLike) -> Any:
        """Approximate quantile(s); relative error is bounded by the bucket width
        (about 2**(2**-scale) - 1, i.e. 0.07% at scale 10)."""
        v, c = self.to_points()
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if c.size == 0:
            res = np.full(qs.shape, np.nan)
        else:
            cum = np.cumsum(c)
            pos = np.clip(np.ceil(qs * cum[-1]).astype(np.int64), 1, cum[-1])
            res = v[np.searchsorted(cum, pos)]
            res = np.where(qs <= 0, self.min, np.where(qs >= 1, self.max, res))
        return float(res[0]) if np.ndim(q) == 0 else res

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (counts as lists); inverse of :meth:`from_dict`."""
        return {
            "scale": self.scale,
            "zero_count": self.zero_count,
            "positive": {"offset": self.positive.offset, "counts": self.positive.counts.tolist()},
            "negative": {"offset": self.negative.offset, "counts": self.negative.counts.tolist()},
            "count": self.count,
            "sum": self.sum,
            "min": None if math.isnan(self.min) else self.min,
            "max": None if math.isnan(self.max) else self.max,
            "max_size": self.max_size,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExpHistogram:
        try:
            pos, neg = d.get("positive") or {}, d.get("negative") or {}
            out = cls(
                scale=int(d["scale"]),
                zero_count=int(d.get("zero_count", 0)),
                positive=Buckets(int(pos.get("offset", 0)), _int64s(pos.get("counts"))),
                negative=Buckets(int(neg.get("offset", 0)), _int64s(neg.get("counts"))),
                count=int(d["count"]),
                sum=float(d.get("sum", 0.0)),
                min=math.nan if d.get("min") is None else float(d["min"]),
                max=math.nan if d.get("max") is None else float(d["max"]),
                max_size=int(d.get("max_size", DEFAULT_MAX_SIZE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not an exponential-histogram sketch ({exc!r}); expected keys scale, count, "
                "zero_count, positive{offset,counts}, negative{offset,counts}"
            ) from exc
        # np.add.reduce, not .sum(): the method's dispatch is most of the time on ~30 buckets
        pc, nc = out.positive.counts, out.negative.counts
        bucket_total = (int(np.add.reduce(pc)) if pc.size else 0) + (int(np.add.reduce(nc)) if nc.size else 0)
        if out.count != out.zero_count + bucket_total:
            # OTel producers other than ours may put NaN-free but min/max-less data here;
            # the count identity is the one invariant every consumer relies on.
            raise ValueError(
                f"sketch count {out.count} != zero_count {out.zero_count} + bucket counts "
                f"{bucket_total}; the sketch is corrupt"
            )
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExpHistogram):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        a.pop("sum"), b.pop("sum")
        # Sums are float accumulators: order of addition may differ by rounding, so allow
        # error proportional to the largest magnitude summed.
        scale = max(abs(self.min), abs(self.max)) * self.count if self.count else 0.0
        return a == b and math.isclose(self.sum, other.sum, rel_tol=1e-9, abs_tol=1e-12 * scale + 1e-9)
