"""Mergeable exponential-histogram sketches that follow the OpenTelemetry specification.

A sketch summarises a stream of numbers in at most ``max_size`` buckets per sign. Bucket ``i``
at scale ``s`` covers ``(base**i, base**(i+1)]`` with ``base = 2 ** (2 ** -s)``: the layout of
the OTel data model's ``ExponentialHistogram``, so a sketch built here merges with any OTel
exponential histogram, and the processor can merge windows (minute → hour) and replicas
(pod A + pod B) without ever seeing raw values.

Why not ``Histogram.record`` per value: a 1000 × 50 batch would be 50,000 Python calls on the
request path. Here a whole column is bucketed in a few numpy operations.

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
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import numpy.typing as npt

__all__ = ["Buckets", "ExpHistogram", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_SCALE"]

DEFAULT_MAX_SIZE = 160  # the OTel SDK's default bucket count per sign
DEFAULT_MAX_SCALE = 20  # the OTel SDK's maximum scale
MIN_SCALE = -10

_MIN_NORMAL = 2.2250738585072014e-308  # smallest positive normal float64
_MIN_NORMAL_EXPONENT = -1022
_MAX_NORMAL_EXPONENT = 1023


def _indices_at_scale(values: npt.NDArray[np.float64], scale: int) -> npt.NDArray[np.int64]:
    """Bucket index of each (positive, finite) value at ``scale``, as the OTel spec maps it.

    Exact powers of two and subnormals are special-cased as the spec (and the OTel SDK's
    LogarithmMapping / ExponentMapping) do; everything else is ``floor(log(v) * 2**s / ln 2)``
    for positive scales and the IEEE exponent shifted right for scales <= 0.
    """
    mantissa, exponent = np.frexp(values)  # values = mantissa * 2**exponent, mantissa in [0.5, 1)
    ieee_exp = exponent.astype(np.int64) - 1
    power_of_two = mantissa == 0.5
    if scale > 0:
        factor = math.ldexp(1.0 / math.log(2.0), scale)
        with np.errstate(divide="ignore"):
            idx = np.floor(np.log(values) * factor).astype(np.int64)
        idx = np.where(power_of_two, (ieee_exp << scale) - 1, idx)
        max_idx = ((_MAX_NORMAL_EXPONENT + 1) << scale) - 1
        np.minimum(idx, max_idx, out=idx)
        sub = values <= _MIN_NORMAL
        if sub.any():
            idx[sub] = (_MIN_NORMAL_EXPONENT << scale) - 1
        return idx
    # scale <= 0: index is the exponent, minus one for exact powers of two, shifted.
    idx = ieee_exp - power_of_two.astype(np.int64)
    sub = values < _MIN_NORMAL
    if sub.any():
        idx[sub] = _MIN_NORMAL_EXPONENT - 1
    return idx >> (-scale)


def _scale_change(low: int, high: int, max_size: int) -> int:
    """How many halvings make indices ``low..high`` fit in ``max_size`` buckets."""
    change = 0
    while high - low >= max_size:
        high >>= 1
        low >>= 1
        change += 1
    return change


@dataclass
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


def _add(a: Buckets, b: Buckets) -> Buckets:
    if a.empty:
        return Buckets(b.offset, b.counts.copy())
    if b.empty:
        return Buckets(a.offset, a.counts.copy())
    lo = min(a.offset, b.offset)
    hi = max(a.last, b.last)
    out = np.zeros(hi - lo + 1, np.int64)
    out[a.offset - lo : a.offset - lo + a.counts.size] += a.counts
    out[b.offset - lo : b.offset - lo + b.counts.size] += b.counts
    return Buckets(lo, out)


@dataclass
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
        if max_size < 2:
            raise ValueError(f"max_size={max_size!r} is too small: use at least 2 buckets")
        arr = np.asarray(values, dtype=np.float64).ravel()
        finite = arr[np.isfinite(arr)]
        out = cls(max_size=max_size)
        if finite.size == 0:
            return out
        out.count = int(finite.size)
        out.sum = float(finite.sum())
        out.min = float(finite.min())
        out.max = float(finite.max())
        pos = finite[finite > 0]
        neg = -finite[finite < 0]
        out.zero_count = out.count - int(pos.size) - int(neg.size)
        if pos.size == 0 and neg.size == 0:
            out.scale = 0  # as the OTel SDK reports an all-zero histogram
            return out
        ranges = []
        for vals in (pos, neg):
            if vals.size:
                bounds = _indices_at_scale(np.array([vals.min(), vals.max()]), max_scale)
                ranges.append((int(bounds[0]), int(bounds[1])))
        change = max(_scale_change(lo, hi, max_size) for lo, hi in ranges)
        scale = max(max_scale - change, MIN_SCALE)
        out.scale = scale
        if pos.size:
            out.positive = _bucketize(pos, max_scale, change)
        if neg.size:
            out.negative = _bucketize(neg, max_scale, change)
        return out

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
            acc = Buckets()
            for s in with_buckets:
                acc = _add(acc, getattr(s, sign).downscale(s.scale - out.scale))
            setattr(out, sign, acc)
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
                positive=Buckets(int(pos.get("offset", 0)), np.asarray(pos.get("counts", []), np.int64)),
                negative=Buckets(int(neg.get("offset", 0)), np.asarray(neg.get("counts", []), np.int64)),
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
        bucket_total = int(out.positive.counts.sum() + out.negative.counts.sum())
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
        return a == b and math.isclose(self.sum, other.sum, rel_tol=1e-9, abs_tol=1e-9)


def _bucketize(values: npt.NDArray[np.float64], max_scale: int, change: int) -> Buckets:
    """Count positive values into buckets at ``max_scale - change``.

    Indices are computed at ``max_scale`` and shifted, so a sketch built in one batch equals
    the merge of sketches built from its parts (merging also shifts).
    """
    scale = max_scale - change
    if scale < MIN_SCALE:
        change = max_scale - MIN_SCALE
    idx = _indices_at_scale(values, max_scale) >> change
    lo = int(idx.min())
    counts = np.bincount(idx - lo).astype(np.int64)
    return Buckets(lo, counts)
