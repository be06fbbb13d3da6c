"""Reference profiles: what the training data looked like, saved as versioned JSON.

A :class:`Reference` holds, per column, its kind, counts of missing values by kind
(``absent``, ``null``, ``nan``, ``inf``), summary statistics, 200 equal-mass quantile bins
(exact CDF knots, used by KS, Wasserstein, PSI and Jensen–Shannon), the same OTel exponential
histogram the SDK emits, and category frequencies; an inferred, editable :class:`Schema`;
optionally the prediction and target distributions, the confusion matrix (for black-box label
shift estimation) and a small PCA-reduced sample for multivariate drift.

Format version 2 adds, per numeric summary, the count strictly below each bin edge
(``bins.below``) and makes the heaviest repeated values (all distinct values of a column with
at most ``MAX_ATOMS`` of them) edges too, so atoms — integers, rounded prices, clip bounds —
are exact jumps of the reference CDF. Version 1 files still load (their atoms are then only
bounded, via the stored sketch).

It is built by ``Reference.from_data(obj)`` or ``infersight profile DATA --model NAME -o
reference.json`` and never pickled.

Example:
    >>> import numpy as np
    >>> ref = Reference.from_data({"x": np.arange(100.0), "c": np.array(["a", "b"] * 50, dtype=object)}, model="m")
    >>> ref.features["x"].kind, ref.features["c"].categories
    ('numeric', {'a': 50, 'b': 50})
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight._extension import speedups as _ext
from infersight.stats.columns import (
    COUNTED_KINDS,
    OTHER,
    SKETCHED_KINDS,
    clean_column,
    column_parts,
    infer_kind,
    null_mask,
    output_kind,
    output_parts,
    to_columns,
)
from infersight.stats.schema import NumericFacts, Schema
from infersight.stats.sketch import ExpHistogram

__all__ = ["Reference", "FeatureProfile", "NumericSummary", "Confusion", "FORMAT_VERSION"]

FORMAT = "infersight.reference"
FORMAT_VERSION = 2  # 2: bins.below and atoms as edges; version 1 files still load
N_BINS = 200  # equal-mass bins: each holds 0.5% of the reference, the bound on binned KS error
MAX_ATOMS = 256  # columns with at most this many distinct values are stored exactly (all atoms)
ATOM_MIN_SHARE = 0.001  # otherwise: the heaviest (<= MAX_ATOMS) values holding >= 0.1% each
PSI_LEVELS = tuple(np.round(np.arange(1, 10) / 10, 2))  # decile edges for PSI / Jensen–Shannon
MAX_CATEGORIES = 10_000  # categories kept per column; the rest are counted as OTHER ("__other__")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_THREADED_ROWS = 50_000  # from this many rows columns are profiled on a thread per CPU by default


def sorted_quantile(xs: npt.NDArray[np.float64], q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``np.quantile(xs, q)`` (linear method) for an already sorted array, without re-sorting."""
    qs = np.asarray(q, dtype=np.float64)
    pos = qs * (xs.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, xs.size - 1)
    frac = pos - lo
    return xs[lo] + frac * (xs[hi] - xs[lo])


@dataclass
class NumericSummary:
    """Distribution of the finite values of a numeric column (or of text/array lengths).

    ``edges``/``cum`` are CDF knots: ``cum[i]`` values are ``<= edges[i]``; ``below[i]`` values
    are ``< edges[i]`` (``None`` in version-1 files), so ``cum[i] - below[i]`` is the mass of
    the atom at ``edges[i]``. Edges are the 200 equal-mass quantiles, the deciles
    (``psi_edges``, a subset) and the column's atoms (see ``MAX_ATOMS``).
    """

    count: int
    min: float
    max: float
    mean: float
    std: float
    quantiles: dict[str, float]
    edges: npt.NDArray[np.float64]
    cum: npt.NDArray[np.int64]
    psi_edges: npt.NDArray[np.float64]
    sketch: ExpHistogram
    below: npt.NDArray[np.int64] | None = None
    _knots: Any = field(default=None, init=False, repr=False, compare=False)
    # every value a whole number: known when built from values, for the schema (not stored)
    _whole: bool | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_values(cls, values: npt.NDArray[np.float64]) -> NumericSummary:
        """Summarise finite values (callers drop NaN/Inf first).

        >>> NumericSummary.from_values(np.array([1.0, 2.0, 3.0])).quantiles["p50"]
        2.0
        """
        return cls.from_sorted(np.sort(np.asarray(values, dtype=np.float64)))

    @classmethod
    def from_column(cls, x: npt.NDArray[np.float64], *, overwrite: bool = False) -> tuple[NumericSummary, int, int]:
        """Summarise the finite values of a float column; also return its NaN and ±Inf counts.

        One sort serves everything: NaN sorts last and ±Inf to the ends, so the finite
        values are a slice of the sorted copy (no masks, no second copy). ``overwrite=True``
        sorts ``x`` itself when it is writable (the caller hands the array over: no copy, 8 MB
        of fresh memory less per million values); the summary is the same.

        >>> s, nan, inf = NumericSummary.from_column(np.array([2.0, np.nan, 1.0, np.inf]))
        >>> s.count, nan, inf
        (2, 1, 1)
        """
        if overwrite and x.flags.writeable:
            x.sort()
            xs = x
        else:
            xs = np.sort(x)
        nan_at = int(np.searchsorted(xs, np.nan, side="left"))
        lo = int(np.searchsorted(xs[:nan_at], -np.inf, side="right"))
        hi = int(np.searchsorted(xs[:nan_at], np.inf, side="left"))
        return cls.from_sorted(xs[lo:hi]), int(xs.size) - nan_at, lo + nan_at - hi

    @classmethod
    def from_sorted(cls, xs: npt.NDArray[np.float64]) -> NumericSummary:
        """Summarise finite values already sorted ascending: quantiles, bins, atoms, moments
        and the sketch all read the one sorted array (the sketch by binary search,
        :meth:`ExpHistogram.from_sorted`), the same figures :meth:`from_values` always gave.

        >>> s = NumericSummary.from_sorted(np.array([1.0, 1.0, 4.0]))
        >>> s.cum[0], s.below[0], s.quantiles["p50"]  # the atom at 1.0 holds two values
        (np.int64(2), np.int64(0), 1.0)
        """
        n = int(xs.size)
        if n == 0:
            empty = np.zeros(0)
            return cls(
                0, math.nan, math.nan, math.nan, math.nan, {}, empty, np.zeros(0, np.int64), empty, ExpHistogram()
            )
        levels = np.linspace(0.0, 1.0, N_BINS + 1)
        edges = _distinct(sorted_quantile(xs, levels))
        psi_edges = _distinct(sorted_quantile(xs, np.asarray(PSI_LEVELS)))
        atoms, every_value = _sorted_atoms(xs)
        edges = _distinct(np.concatenate([_distinct(np.concatenate([edges, psi_edges])), atoms]))
        cum = np.searchsorted(xs, edges, side="right").astype(np.int64)
        below = np.searchsorted(xs, edges, side="left").astype(np.int64)
        total = xs.sum()
        mean = float(total / n)  # what xs.mean() computes, from the sum the sketch needs too
        out = cls(
            count=n,
            min=float(xs[0]),
            max=float(xs[-1]),
            mean=mean,
            std=_sorted_std(xs, total) if n > 1 else 0.0,
            quantiles={
                f"p{int(round(q * 100)):02d}": float(v) for q, v in zip(QUANTILES, sorted_quantile(xs, QUANTILES))
            },
            edges=edges,
            cum=cum,
            psi_edges=psi_edges,
            sketch=ExpHistogram.from_sorted(xs, total=float(total)),
            below=below,
        )
        out._whole = _all_whole(atoms if every_value else xs)
        return out

    @classmethod
    def from_sketch(cls, s: ExpHistogram) -> NumericSummary:
        """Summarise a sketch (a past window used as reference) without inventing values: the
        edges are the sketch's exact knots (bucket boundaries), quantiles come from the sketch.
        """
        from infersight.stats.cdf import Knots

        if s.count == 0:
            return cls.from_values(np.zeros(0))
        k = Knots.from_sketch(s)
        cum = np.rint(k.F * s.count).astype(np.int64)
        psi_idx = np.minimum(np.searchsorted(k.F, np.asarray(PSI_LEVELS) - 1e-12, side="left"), k.x.size - 1)
        v, c = s.to_points()
        mean = s.sum / s.count
        var = float(np.sum(c * (v - mean) ** 2) / (s.count - 1)) if s.count > 1 else 0.0
        return cls(
            count=s.count,
            min=s.min,
            max=s.max,
            mean=mean,
            std=math.sqrt(max(var, 0.0)),
            quantiles={
                f"p{int(round(q * 100)):02d}": float(x)
                for q, x in zip(QUANTILES, np.atleast_1d(s.quantile(np.asarray(QUANTILES))))
            },
            edges=k.x,
            cum=cum,
            psi_edges=np.unique(k.x[psi_idx]),
            sketch=s,
        )

    def knots(self) -> Any:
        """The CDF as exact :class:`~infersight.stats.cdf.Knots`: the edges, the points just
        below them (``below``), and the stored sketch's bucket boundaries (same data).
        Built once per summary: the policy re-fits the same profile for every window."""
        if self._knots is None:
            self._knots = self._build_knots()
        return self._knots

    def _build_knots(self) -> Any:
        from infersight.stats.cdf import Knots, below

        n = self.count
        if n == 0:
            return Knots(np.zeros(0), np.zeros(0), 0)
        xs, cs = [self.edges], [self.cum.astype(np.float64)]
        if self.below is not None:
            xs.append(below(self.edges))
            cs.append(self.below.astype(np.float64))
        own = Knots.from_counts(np.concatenate(xs), np.concatenate(cs), n, self.min, self.max)
        if self.sketch.count != n:
            return own
        sk = Knots.from_sketch(self.sketch)
        x = np.concatenate([own.x, sk.x])
        f = np.concatenate([own.F, sk.F])
        order = np.lexsort((f, x))
        if np.any(np.diff(f[order]) < -1e-12):  # not the same data (hand-edited): edges only
            return own
        return Knots.from_counts(x, f * n, n, self.min, self.max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min": _num(self.min),
            "max": _num(self.max),
            "mean": _num(self.mean),
            "std": _num(self.std),
            "quantiles": self.quantiles,
            "bins": {
                "edges": self.edges.tolist(),
                "cum": self.cum.tolist(),
                **({"below": self.below.tolist()} if self.below is not None else {}),
                "psi_edges": self.psi_edges.tolist(),
            },
            "sketch": self.sketch.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericSummary:
        bins = d["bins"]
        out = cls(
            count=int(d["count"]),
            min=_flt(d.get("min")),
            max=_flt(d.get("max")),
            mean=_flt(d.get("mean")),
            std=_flt(d.get("std")),
            quantiles={str(k): float(v) for k, v in (d.get("quantiles") or {}).items()},
            edges=np.asarray(bins["edges"], np.float64),
            cum=np.asarray(bins["cum"], np.int64),
            psi_edges=np.asarray(bins.get("psi_edges", []), np.float64),
            sketch=ExpHistogram.from_dict(d["sketch"]),
            below=np.asarray(bins["below"], np.int64) if bins.get("below") is not None else None,
        )
        if out.edges.shape != out.cum.shape or (
            out.cum.size and (np.any(np.diff(out.cum) < 0) or out.cum[-1] != out.count)
        ):
            raise ValueError(
                "numeric bins are inconsistent (edges/cum lengths differ or cum is not a CDF ending at count)"
            )
        if out.below is not None and (
            out.below.shape != out.cum.shape
            or np.any(out.below > out.cum)
            or np.any(out.below[1:] < out.cum[:-1])
            or (out.below.size and out.below[0] != 0)
        ):
            raise ValueError(
                "numeric bins are inconsistent (below must be the count under each edge, between the previous cum and this one)"
            )
        return out


def _distinct(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``np.unique(values)`` for finite floats, step for step (``union1d(a, b)`` is
    ``_distinct(concatenate([a, b]))``). numpy's own imports ``numpy.ma`` on first use, 7 ms of
    a 0.4 s ``infersight profile`` run for arrays of a few hundred values."""
    out = np.sort(values)
    keep = np.empty(out.shape, dtype=bool)
    keep[:1] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def _sorted_atoms(xs: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], bool]:
    """Values of sorted ``xs`` with mass: all distinct values when there are at most
    ``MAX_ATOMS``, else the heaviest ``MAX_ATOMS`` of those holding >= ``ATOM_MIN_SHARE``;
    and whether those are every distinct value of ``xs``.

    Found by binary search, without a pass over the values: the distinct values one after
    another (stopping past ``MAX_ATOMS``), then, for the heavy ones, the runs through every
    ``need - 1``-th position: a value held ``need`` times or more fills that many consecutive
    places of the sorted column, so it sits on one of those positions.
    """
    n = int(xs.size)
    if n == 0:
        return xs, True
    probe = xs[:: max(1, n // 1024)]
    if np.count_nonzero(probe[1:] != probe[:-1]) < MAX_ATOMS:  # else too many among the probes alone
        starts, at = [0], 0
        while len(starts) <= MAX_ATOMS:
            at = int(np.searchsorted(xs, xs[at], side="right"))
            if at >= n:
                return xs[np.asarray(starts, dtype=np.intp)], True
            starts.append(at)
    need = max(2, math.ceil(ATOM_MIN_SHARE * n))
    if need > n:
        return xs[:0].copy(), False
    probes = xs[:: need - 1]
    lo = np.searchsorted(xs, probes, side="left")
    counts = np.searchsorted(xs, probes, side="right") - lo
    heavy = counts >= need
    if not np.any(heavy):
        return xs[:0].copy(), False  # no value repeats `need` times
    # each heavy value once (a long run holds several probes), in value order
    first, counts = lo[heavy], counts[heavy]
    keep = np.empty(first.shape, dtype=bool)
    keep[:1] = True
    np.not_equal(first[1:], first[:-1], out=keep[1:])
    first, counts = first[keep], counts[keep]
    if first.size > MAX_ATOMS:
        first = first[np.argsort(-counts, kind="stable")[:MAX_ATOMS]]
    return np.sort(xs[first]), False


_STD_BLOCK = 1 << 15  # values squared per step: 256 kB of scratch, in cache, reused
# The C extension's sum of squared deviations in numpy's order (None where not built or turned off)
_c_squared_deviations: Any = getattr(_ext, "squared_deviations", None)


def _sorted_std(xs: npt.NDArray[np.float64], total: np.float64) -> float:
    """``xs.std(ddof=1)`` given ``xs.sum()``, bit for bit, without numpy's array of squared
    deviations (8 MB per million values, fresh memory the first time: most of what it cost).

    numpy sums a contiguous array pairwise: halves (the first rounded down to a multiple of 8)
    summed apart and added, down to blocks of 128. Cutting the array at the same points and
    letting numpy sum each piece keeps every addition in its place, so the result is the one
    ``xs.std(ddof=1)`` gives; the pieces go through one small scratch buffer. The C
    extension's ``squared_deviations`` makes the same additions (this code is its reference).
    """
    mean = total / xs.size
    if _c_squared_deviations is not None and xs.dtype == np.float64 and xs.flags.c_contiguous:
        # The same additions in C, each deviation squared as it is read: one pass instead of
        # three over each block (0.7 -> 0.25 ms per million values)
        return float(np.sqrt(np.float64(_c_squared_deviations(xs, float(mean))) / (xs.size - 1)))
    scratch = np.empty(min(xs.size, _STD_BLOCK))

    def squares(part: npt.NDArray[np.float64]) -> np.float64:
        n = part.size
        if n > _STD_BLOCK:
            half = n // 2 - (n // 2) % 8
            return squares(part[:half]) + squares(part[half:])
        dev = scratch[:n]
        np.subtract(part, mean, out=dev)
        np.multiply(dev, dev, out=dev)
        return np.add.reduce(dev)

    return float(np.sqrt(squares(xs) / (xs.size - 1)))


def _all_whole(xs: npt.NDArray[np.float64]) -> bool:
    """Every value a whole number; a few spread-out values settle it for most float columns."""
    if xs.size == 0:
        return False
    probe = xs[:: max(1, xs.size // 1024)]
    if not np.all(probe == np.floor(probe)):
        return False
    return bool(np.all(xs == np.floor(xs)))


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _flt(x: Any) -> float:
    return math.nan if x is None else float(x)


@dataclass
class FeatureProfile:
    """One column of the reference.

    ``missing`` counts rows by kind; ``numeric`` is set for numeric columns and (of the
    lengths) for text and arrays; ``categories`` for categorical and boolean columns.
    """

    name: str
    kind: str
    rows: int
    missing: dict[str, int] = field(default_factory=dict)
    numeric: NumericSummary | None = None
    categories: dict[str, int] | None = None
    n_unique: int | None = None

    @property
    def missing_rate(self) -> float:
        """Share of rows that are null, NaN or absent (not Inf)."""
        lost = sum(v for k, v in self.missing.items() if k != "inf")
        return lost / self.rows if self.rows else 0.0

    @classmethod
    def from_column(
        cls, name: str, raw: npt.NDArray[Any], kind: str | None = None, *, overwrite: bool = False
    ) -> FeatureProfile:
        """Profile one column (any of the shapes ``to_columns`` produces). ``overwrite=True``:
        the caller hands ``raw`` over and a number column is sorted in place (the profile is the
        same; ``raw`` is left sorted).

        >>> FeatureProfile.from_column("b", np.array([True, False, True])).categories
        {'false': 1, 'true': 2}
        """
        kind = kind or infer_kind(raw)
        prof = cls(name, kind, int(raw.shape[0]))
        if kind == "numeric" and raw.dtype.kind in "iuf":
            # A typed number column (the common case, and the one big frames are made of): one
            # sort serves the summary and the NaN/Inf counts, no split into parts. A column of
            # another number type is converted to a fresh array, ours to sort in place.
            x = raw.astype(np.float64, copy=False)
            prof.numeric, nan, inf = NumericSummary.from_column(x, overwrite=overwrite or x is not raw)
            prof.missing = {"absent": 0, "null": 0, "nan": nan, "inf": inf}
            return prof
        if kind == "timestamp":
            return prof
        parts = column_parts(raw, kind)
        prof.missing = parts.missing
        _add_parts(prof, parts, raw)
        return prof

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "missing": self.missing}
        if self.numeric is not None:
            d["numeric"] = self.numeric.to_dict()
        if self.categories is not None:
            d["categories"] = self.categories
        if self.n_unique is not None:
            d["n_unique"] = self.n_unique
        return d

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> FeatureProfile:
        return cls(
            name,
            str(d["kind"]),
            int(d["rows"]),
            {str(k): int(v) for k, v in (d.get("missing") or {}).items()},
            NumericSummary.from_dict(d["numeric"]) if d.get("numeric") else None,
            {str(k): int(v) for k, v in d["categories"].items()} if d.get("categories") is not None else None,
            d.get("n_unique"),
        )


def _add_parts(prof: FeatureProfile, parts: Any, raw: npt.NDArray[Any]) -> None:
    """Store a column cut by the value rule (:func:`~infersight.stats.columns.column_parts`):
    the numbers (and text/array lengths) as a numeric summary, the labels as category counts,
    each when the column has them or its kind is summarised that way, so a column that mixes
    numbers and strings is stored as the SDK sends it: both."""
    if parts.numbers.size or prof.kind in SKETCHED_KINDS:
        prof.numeric = NumericSummary.from_values(parts.numbers)
    if parts.labels or prof.kind in COUNTED_KINDS:
        labels = np.empty(len(parts.labels), dtype=object)
        labels[:] = parts.labels
        prof.categories = category_counts(labels)
        if prof.kind in COUNTED_KINDS:
            prof.n_unique = len(prof.categories)
    if prof.kind == "text":
        texts = [v for v in raw.tolist() if isinstance(v, str)] if raw.dtype.kind == "O" else []
        prof.n_unique = len(set(texts))


def category_counts(values: npt.NDArray[Any], kind: str = "categorical", limit: int = MAX_CATEGORIES) -> dict[str, int]:
    """Counts per category as strings (booleans as ``"true"``/``"false"``), most frequent
    ``limit`` kept and the rest summed under ``"__other__"``."""
    if values.size == 0:
        return {}
    if kind == "boolean" or values.dtype.kind == "b":
        b = values.astype(bool)
        t = int(b.sum())
        return {k: v for k, v in (("false", int(b.size) - t), ("true", t)) if v}
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    if uniq.size > limit:
        order = np.argsort(-counts, kind="stable")
        keep, rest = order[:limit], order[limit:]
        out = {str(uniq[i]): int(counts[i]) for i in sorted(keep)}
        out[OTHER] = out.get(OTHER, 0) + int(counts[rest].sum())
        return out
    return {str(u): int(c) for u, c in zip(uniq, counts)}


@dataclass
class Confusion:
    """Counts of (predicted, true) label pairs on held-out data, for BBSE label shift."""

    labels: list[str]
    matrix: npt.NDArray[np.int64]  # rows: predicted label, columns: true label

    @classmethod
    def from_labels(cls, predicted: npt.ArrayLike, actual: npt.ArrayLike) -> Confusion:
        """Count label pairs.

        >>> Confusion.from_labels(["a", "b", "b"], ["a", "b", "a"]).matrix.tolist()
        [[1, 0], [1, 1]]
        """
        p = np.asarray(predicted).astype(str)
        a = np.asarray(actual).astype(str)
        labels = sorted(set(p.tolist()) | set(a.tolist()))
        index = {lab: i for i, lab in enumerate(labels)}
        m = np.zeros((len(labels), len(labels)), np.int64)
        np.add.at(m, (np.array([index[x] for x in p]), np.array([index[x] for x in a])), 1)
        return cls(labels, m)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "matrix": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Confusion:
        return cls([str(x) for x in d["labels"]], np.asarray(d["matrix"], np.int64))


@dataclass
class Reference:
    """A reference profile; see the module docstring. Save with :meth:`save`, read with
    :meth:`load`; ``features`` are :class:`FeatureProfile` by name."""

    model: str | None
    n_rows: int
    features: dict[str, FeatureProfile]
    schema: Schema
    model_version: str | None = None
    created_at: str | None = None
    trained_at: str | None = None
    prediction: FeatureProfile | None = None
    target: FeatureProfile | None = None
    confusion: Confusion | None = None
    multivariate: dict[str, Any] | None = None

    @classmethod
    def from_data(
        cls,
        obj: Any,
        *,
        model: str | None = None,
        model_version: str | None = None,
        prediction: str | npt.ArrayLike | None = None,
        target: str | npt.ArrayLike | None = None,
        trained_at: str | dt.datetime | None = None,
        columns: Sequence[str] | None = None,
        kinds: Mapping[str, str] | None = None,
        relations: bool = False,
        multivariate: bool = True,
        threads: int | None = None,
    ) -> Reference:
        """Profile a table: DataFrame, dict of columns, list of dicts or 2-D numpy array.

        ``prediction``/``target`` name a column of ``obj`` (or pass the values); they are
        profiled apart from the features, and with both a confusion matrix is stored.
        ``kinds`` overrides inferred kinds (e.g. ``{"zip": "categorical"}``). Columns are
        profiled ``threads`` at a time (default: one per CPU from 50,000 rows; the sorts run
        outside the GIL).

        >>> ref = Reference.from_data([{"a": 1.0, "y": "no"}, {"a": 2.0, "y": "yes"}], model="m", target="y")
        >>> sorted(ref.features), ref.target.categories
        (['a'], {'no': 1, 'yes': 1})
        """
        cols, n = obj if _is_columns_pair(obj) else to_columns(obj)
        pred_col = _pop_output(cols, prediction, n, "prediction")
        target_col = _pop_output(cols, target, n, "target")
        if columns is not None:
            unknown = [c for c in columns if c not in cols]
            if unknown:
                raise KeyError(f"column(s) {unknown} are not in the data; it has {sorted(cols)[:20]}")
            cols = {c: cols[c] for c in columns}
        kinds = dict(kinds or {})
        kinds_found = {k: kinds.get(k) or infer_kind(v) for k, v in cols.items()}
        features = _profile_columns(
            {k: v for k, v in cols.items() if kinds_found[k] != "timestamp"}, kinds_found, threads
        )
        for k, kind in kinds_found.items():
            if kind == "timestamp":
                features[k] = FeatureProfile(k, "timestamp", n)  # kept for presence checks, not profiled
        schema = Schema.infer(
            cols,
            kinds=kinds_found,
            model=model,
            model_version=model_version,
            relations=relations,
            numeric_facts=_numeric_facts(features),
        )
        ref = cls(
            model=model,
            n_rows=n,
            features=features,
            schema=schema,
            model_version=model_version,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            trained_at=_iso(trained_at),
        )
        ref._add_outputs(prediction, pred_col, target, target_col)
        if multivariate:
            from infersight.stats.multivariate import reference_sample

            numeric = {k: clean_column(cols[k], "numeric") for k, f in features.items() if f.kind == "numeric"}
            moments = {k: _moments(features[k].numeric) for k in numeric}
            ref.multivariate = reference_sample(numeric, moments=moments) if len(numeric) >= 2 else None
        return ref

    @classmethod
    def from_columns(
        cls,
        loaders: Mapping[str, Callable[[], npt.NDArray[Any]]],
        n_rows: int,
        *,
        model: str | None = None,
        model_version: str | None = None,
        prediction: str | None = None,
        target: str | None = None,
        trained_at: str | dt.datetime | None = None,
        columns: Sequence[str] | None = None,
        kinds: Mapping[str, str] | None = None,
        multivariate: bool = True,
        threads: int | None = None,
        overwrite: bool = False,
    ) -> Reference:
        """:meth:`from_data` for a table loaded one column at a time: ``loaders`` maps each
        column's name to a function that loads it (called once, from any thread;
        :func:`~infersight.stats.io.parquet_columns` makes them). Each column is profiled as
        it loads and then let go, keeping only its rows of the multivariate sample, so the
        whole table is never in memory; the profile equals ``from_data`` on the loaded table.
        The prediction and target columns are loaded whole. ``relations`` needs every column
        at once: use :meth:`from_data` for it.

        ``overwrite=True`` when the loaders hand their arrays over (each call makes a fresh
        one that nothing else holds, as ``parquet_columns``' loaders do): a number column is
        then sorted where it lies instead of in a copy (``infersight profile`` on the 1M x 20
        bench file: 20 copies of 8 MB less). The profile is the same either way.

        >>> cols = {"a": lambda: np.arange(4.0), "b": lambda: np.array([1.0, 0.0, 1.0, 1.0])}
        >>> Reference.from_columns(cols, 4, model="m").features["b"].numeric.mean
        0.75
        """
        from infersight.stats.multivariate import sample_from_rows, sample_rows

        loaders = dict(loaders)
        pred_col = _load_output(loaders, prediction, "prediction")
        target_col = _load_output(loaders, target, "target")
        if columns is not None:
            unknown = [c for c in columns if c not in loaders]
            if unknown:
                raise KeyError(f"column(s) {unknown} are not in the data; it has {sorted(loaders)[:20]}")
            loaders = {c: loaders[c] for c in columns}
        kinds = dict(kinds or {})
        fit_at, sample_at = sample_rows(n_rows) if multivariate else (None, None)

        def one(name: str) -> tuple[FeatureProfile, Any, Any]:
            raw = loaders[name]()
            if raw.shape[0] != n_rows:
                raise ValueError(f"column {name!r} has {raw.shape[0]} values for {n_rows} rows")
            kind = kinds.get(name) or infer_kind(raw)
            rows = None
            if fit_at is not None and kind == "numeric":  # taken before a sort in place reorders raw
                clean = np.asarray(clean_column(raw, "numeric"), np.float64)
                rows = (clean[fit_at], clean[sample_at])
            if kind == "timestamp":  # kept for presence checks, not profiled (as in from_data)
                prof = FeatureProfile(name, "timestamp", n_rows)
            else:
                prof = FeatureProfile.from_column(name, raw, kind, overwrite=overwrite)
            # With the profile's facts a numeric rule reads no values; the other kinds' rules
            # read raw, which only a number column's sort in place reorders.
            rule = Schema.infer({name: raw}, kinds={name: kind}, numeric_facts=_numeric_facts({name: prof}))
            return prof, rule.features[name], rows

        workers = _workers(threads, n_rows, len(loaders))
        if workers <= 1:
            done = [one(name) for name in loaders]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infersight-profile") as pool:
                done = list(pool.map(one, loaders))
        # The order from_data gives: profiled columns, then timestamps; the schema in column order.
        features = {p.name: p for p, _, _ in done if p.kind != "timestamp"}
        features.update({p.name: p for p, _, _ in done if p.kind == "timestamp"})
        schema = Schema(model=model, model_version=model_version)
        schema.features = {rule.name: rule for _, rule, _ in done}
        ref = cls(
            model=model,
            n_rows=n_rows,
            features=features,
            schema=schema,
            model_version=model_version,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            trained_at=_iso(trained_at),
        )
        ref._add_outputs(prediction, pred_col, target, target_col)
        sampled = {p.name: rows for p, _, rows in done if rows is not None}
        if multivariate:
            moments = {k: _moments(features[k].numeric) for k in sampled}
            ref.multivariate = (
                sample_from_rows(
                    {k: fit for k, (fit, _) in sampled.items()}, {k: at for k, (_, at) in sampled.items()}, moments
                )
                if len(sampled) >= 2
                else None
            )
        return ref

    def _add_outputs(
        self, prediction: Any, pred_col: npt.NDArray[Any] | None, target: Any, target_col: npt.NDArray[Any] | None
    ) -> None:
        """Profile the prediction and target columns by the SDK's rule for outputs, and with
        both categorical, their confusion matrix."""
        if pred_col is not None:
            name = prediction if isinstance(prediction, str) else "prediction"
            self.prediction = _output_column(name, pred_col)
        if target_col is not None:
            name = target if isinstance(target, str) else "target"
            self.target = _output_column(name, target_col)
        if (
            pred_col is not None
            and target_col is not None
            and self.prediction is not None
            and self.target is not None
            and self.prediction.kind in ("categorical", "boolean")
            and self.target.kind in ("categorical", "boolean")
        ):
            keep = ~(null_mask(pred_col) | null_mask(target_col))
            self.confusion = Confusion.from_labels(_labels(pred_col[keep]), _labels(target_col[keep]))

    @property
    def model_age_days(self) -> float | None:
        """Days since ``trained_at`` (model staleness), or ``None``."""
        if not self.trained_at:
            return None
        t = dt.datetime.fromisoformat(self.trained_at.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return (dt.datetime.now(dt.timezone.utc) - t).total_seconds() / 86400.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "created_at": self.created_at,
            "trained_at": self.trained_at,
            "n_rows": self.n_rows,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "schema": self.schema.to_dict(),
        }
        if self.prediction is not None:
            d["prediction"] = {"column": self.prediction.name, **self.prediction.to_dict()}
        if self.target is not None:
            d["target"] = {"column": self.target.name, **self.target.to_dict()}
        if self.confusion is not None:
            d["confusion"] = self.confusion.to_dict()
        if self.multivariate is not None:
            d["multivariate"] = self.multivariate
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "reference") -> Reference:
        try:
            return cls(
                model=d.get("model"),
                n_rows=int(d["n_rows"]),
                features={str(k): FeatureProfile.from_dict(str(k), v) for k, v in d["features"].items()},
                schema=Schema.from_dict(d.get("schema") or {}),
                model_version=d.get("model_version"),
                created_at=d.get("created_at"),
                trained_at=d.get("trained_at"),
                prediction=_output_profile(d.get("prediction"), "prediction"),
                target=_output_profile(d.get("target"), "target"),
                confusion=Confusion.from_dict(d["confusion"]) if d.get("confusion") else None,
                multivariate=d.get("multivariate"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"{source} is not a valid reference profile ({type(exc).__name__}: {exc}); "
                "the file is corrupt or was edited by hand. Re-create it with `infersight profile`"
            ) from exc

    def save(self, path: str | Path) -> None:
        """Write versioned JSON (atomically)."""
        from infersight.stats.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        """Read a profile written by :meth:`save` / ``infersight profile``.

        A newer ``format_version``, a foreign or a corrupt file raise ``ValueError`` naming the
        file and the fix.
        """
        from infersight.stats.io import read_versioned_json

        doc = read_versioned_json(path, {FORMAT: FORMAT_VERSION})
        return cls.from_dict(doc, source=repr(str(path)))


def _profile_columns(
    cols: Mapping[str, npt.NDArray[Any]], kinds: Mapping[str, str], threads: int | None
) -> dict[str, FeatureProfile]:
    """``FeatureProfile.from_column`` for every column, on a few threads when there is more
    than one column: a numeric column's profile is mostly one sort, which numpy runs without
    the GIL."""
    rows = len(next(iter(cols.values()))) if cols else 0
    workers = _workers(threads, rows, len(cols))
    if workers <= 1:
        return {k: FeatureProfile.from_column(k, v, kinds[k]) for k, v in cols.items()}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infersight-profile") as pool:
        done = pool.map(lambda item: FeatureProfile.from_column(item[0], item[1], kinds[item[0]]), cols.items())
        return {p.name: p for p in done}


def _workers(threads: int | None, rows: int, n_columns: int) -> int:
    """Columns profiled at a time: ``threads``, or one per CPU from ``_THREADED_ROWS`` rows."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads!r}: profile with at least 1 thread, or None for one per CPU")
    default = (os.cpu_count() or 1) if rows >= _THREADED_ROWS else 1  # small tables: not worth a pool
    return min(n_columns, threads if threads is not None else default)


def _load_output(
    loaders: dict[str, Callable[[], npt.NDArray[Any]]], name: str | None, what: str
) -> npt.NDArray[Any] | None:
    """``from_columns``' prediction or target column, loaded whole and taken out of the features."""
    if name is None:
        return None
    if name not in loaders:
        raise KeyError(f"{what} column {name!r} is not in the data; it has {sorted(loaders)[:20]}")
    return loaders.pop(name)()


def _numeric_facts(features: Mapping[str, FeatureProfile]) -> dict[str, NumericFacts]:
    """What the profiles know that the schema's numeric rules need (no second scan)."""
    out = {}
    for name, f in features.items():
        s = f.numeric
        if f.kind != "numeric" or s is None or (s.count and s._whole is None):
            continue
        out[name] = NumericFacts(
            required=f.missing.get("absent", 0) == 0,
            nullable=f.missing.get("absent", 0) + f.missing.get("null", 0) + f.missing.get("nan", 0) > 0,
            allow_inf=f.missing.get("inf", 0) > 0,
            min=s.min if s.count else None,
            max=s.max if s.count else None,
            integer=bool(s._whole) if s.count else False,
        )
    return out


def _moments(s: NumericSummary | None) -> tuple[float, float]:
    """Mean and population std (ddof=0) of the finite values, from the profile."""
    if s is None or s.count == 0:
        return math.nan, math.nan
    return s.mean, s.std * math.sqrt((s.count - 1) / s.count) if s.count > 1 else 0.0


def _output_profile(d: Mapping[str, Any] | None, default: str) -> FeatureProfile | None:
    return FeatureProfile.from_dict(str(d.get("column", default)), d) if d else None


def _is_columns_pair(obj: Any) -> bool:
    return isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], Mapping) and isinstance(obj[1], int)


def _output_column(name: str, col: npt.NDArray[Any]) -> FeatureProfile:
    """Profile a prediction or target column by the SDK's rule for outputs (class labels:
    strings, booleans, integers; values: floats)."""
    prof = FeatureProfile(name, output_kind(col), int(col.shape[0]))
    parts = output_parts(col)
    prof.missing = parts.missing
    _add_parts(prof, parts, col)
    return prof


def _labels(col: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Class labels as the SDK records them (booleans ``"true"``/``"false"``)."""
    if col.dtype.kind == "b":
        return np.where(col, "true", "false")
    if col.dtype.kind == "O":
        return np.array(
            [("true" if v else "false") if isinstance(v, (bool, np.bool_)) else str(v) for v in col.tolist()], dtype=str
        )
    return col.astype(str)


def _pop_output(cols: dict[str, npt.NDArray[Any]], spec: Any, n: int, what: str) -> npt.NDArray[Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in cols:
            raise KeyError(f"{what} column {spec!r} is not in the data; it has {sorted(cols)[:20]}")
        return cols.pop(spec)
    values, _ = to_columns({what: spec})
    col = values[what]
    if col.shape[0] != n:
        raise ValueError(f"{what} has {col.shape[0]} values for {n} rows; pass one per row")
    return col


def _iso(t: str | dt.datetime | None) -> str | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime):
        return t.isoformat()
    try:
        dt.datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"trained_at={t!r} is not an ISO-8601 time; use e.g. 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from exc
    return str(t)
