"""Mergeable window summaries, and sliding / cumulative views over a stream of them.

A :class:`WindowSummary` is what drift needs from one window: per feature the row count,
missing values by kind, an OTel exponential histogram (numeric columns, lengths of text and
arrays) or category counts. Summaries merge exactly — ``a.merge(b)`` equals the summary of
both windows' rows, histogram downscaling included — so minute windows roll up into hours and
replicas into one view. A past window works as a reference too (:meth:`as_reference`), e.g.
the same hour last week for seasonal data.

Sliding views merge the last ``size`` windows (they forget); cumulative views merge everything
so far (they hide a short dip): both are given because they answer different questions.

Example:
    >>> import numpy as np
    >>> a = WindowSummary.from_columns({"x": np.array([1.0, np.nan])}, start=0, end=2)
    >>> b = WindowSummary.from_columns({"x": np.array([3.0])}, start=2, end=3)
    >>> m = a.merge(b)
    >>> m.rows, m.features["x"].sketch.count, m.features["x"].missing["nan"]
    (3, 2, 1)

One model for the engine and the processor: the processor stores a window of one series
(a model's feature, output, or the model's own calls) as a :class:`WindowStats`, named
sketches, explicit-bucket histograms and labelled counters that all add up. A feature's
:class:`FeatureWindow` is that same window read for scoring: its sketch is the ``value``
sketch, its missing counts and categories the ``missing`` and ``category`` counters
(:meth:`FeatureWindow.from_stats`, :meth:`FeatureWindow.to_stats`), so a stored window goes
to ``stats.drift`` as it is:

    >>> stored = a.features["x"].to_stats()
    >>> sorted(stored.counters), stored.sketches["value"].count
    (['missing'], 1)
    >>> FeatureWindow.from_stats(stored, "numeric").rows
    2
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.columns import (
    COUNTED_KINDS,
    MISSING_KINDS,
    SKETCHED_KINDS,
    clean_column,
    column_parts,
    infer_kind,
    to_columns,
)
from infersight.stats.reference import FeatureProfile, category_counts
from infersight.stats.sketch import ExpHistogram

__all__ = ["ExplicitHistogram", "WindowStats", "FeatureWindow", "WindowSummary", "sliding", "cumulative"]


@dataclass
class ExplicitHistogram:
    """An explicit-bucket histogram (OTel ``Histogram`` point): ``counts[i]`` counts values in
    ``(bounds[i-1], bounds[i]]``; the last bucket is everything above ``bounds[-1]``."""

    bounds: tuple[float, ...]
    counts: npt.NDArray[np.int64]
    count: int
    sum: float
    min: float = math.nan
    max: float = math.nan

    def merge(self, other: ExplicitHistogram) -> ExplicitHistogram:
        """Add two histograms with the same bounds (a different layout raises ``ValueError``)."""
        if self.bounds != other.bounds:
            raise ValueError(f"histogram bounds differ: {list(self.bounds)} vs {list(other.bounds)}")
        return ExplicitHistogram(
            self.bounds,
            self.counts + other.counts,
            self.count + other.count,
            self.sum + other.sum,
            _nanmin(self.min, other.min),
            _nanmax(self.max, other.max),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bounds": list(self.bounds),
            "counts": self.counts.tolist(),
            "count": self.count,
            "sum": self.sum,
            "min": None if math.isnan(self.min) else self.min,
            "max": None if math.isnan(self.max) else self.max,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExplicitHistogram:
        return cls(
            tuple(float(b) for b in d["bounds"]),
            np.asarray(d["counts"], np.int64),
            int(d["count"]),
            float(d["sum"]),
            math.nan if d.get("min") is None else float(d["min"]),
            math.nan if d.get("max") is None else float(d["max"]),
        )


def _nanmin(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else min(a, b)


def _nanmax(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)


@dataclass
class WindowStats:
    """Mergeable statistics of one series in one window: what the processor stores.

    Named sketches (``value`` for a feature or output, ``duration``, ``batch_size``,
    ``span_duration`` for a model), explicit-bucket histograms, and counters by group and label
    (``missing`` by kind, ``category`` by value, ``violations`` by rule, ``calls``, ``errors``,
    ...). All three add up, so windows merge into larger windows and replicas into one view,
    in any order. A feature's window reads as a :class:`FeatureWindow` for scoring
    (:meth:`FeatureWindow.from_stats`).

    >>> a = WindowStats(counters={"missing": {"nan": 2}})
    >>> WindowStats.merge_all([a, WindowStats(counters={"missing": {"nan": 1, "null": 4}})]).counters
    {'missing': {'nan': 3, 'null': 4}}
    """

    sketches: dict[str, ExpHistogram] = field(default_factory=dict)
    histograms: dict[str, ExplicitHistogram] = field(default_factory=dict)
    counters: dict[str, dict[str, float]] = field(default_factory=dict)

    def add_count(self, group: str, label: str, value: float) -> None:
        bucket = self.counters.setdefault(group, {})
        bucket[label] = bucket.get(label, 0) + value

    @staticmethod
    def merge_all(items: Iterable[WindowStats]) -> WindowStats:
        """One ``WindowStats`` holding everything in ``items`` (one sketch merge per name)."""
        sketches: dict[str, list[ExpHistogram]] = defaultdict(list)
        out = WindowStats()
        for it in items:
            for name, s in it.sketches.items():
                sketches[name].append(s)
            for name, h in it.histograms.items():
                _merge_histogram(out.histograms, name, h)
            for group, labels in it.counters.items():
                for label, v in labels.items():
                    out.add_count(group, label, v)
        for name, parts in sketches.items():
            out.sketches[name] = parts[0] if len(parts) == 1 else ExpHistogram.merge_all(parts)
        return out


def _merge_histogram(into: dict[str, ExplicitHistogram], name: str, h: ExplicitHistogram) -> None:
    """Histograms with other bucket bounds (another producer's layout) are kept side by side
    under ``name@N`` instead of being re-binned into a layout they were not measured in."""
    key = name
    n = 1
    while key in into and into[key].bounds != h.bounds:
        key = f"{name}@{n}"
        n += 1
    into[key] = into[key].merge(h) if key in into else h


# The missing kinds every FeatureWindow names (a stored window keeps only those it saw).
_MISSING_KINDS = ("absent", "null", "nan", "inf")


def _add_counts(a: Mapping[str, int] | None, b: Mapping[str, int] | None) -> dict[str, int] | None:
    if a is None and b is None:
        return None
    out = dict(a or {})
    for k, v in (b or {}).items():
        out[k] = out.get(k, 0) + v
    return out


@dataclass
class FeatureWindow:
    """One feature in one window. ``values`` (finite raw numbers) is kept only offline."""

    kind: str
    rows: int
    missing: dict[str, int]
    sketch: ExpHistogram | None = None
    categories: dict[str, int] | None = None
    values: npt.NDArray[np.float64] | None = None

    @classmethod
    def from_column(cls, raw: npt.NDArray[Any], kind: str, keep_values: bool = False) -> FeatureWindow:
        # Cut by the value rule of the one feature model, as the profile and the SDK cut it.
        if kind == "timestamp":  # kept for presence only, as in the profile
            return cls(kind, int(raw.shape[0]), dict.fromkeys(MISSING_KINDS, 0))
        parts = column_parts(raw, kind)
        sketched = kind in SKETCHED_KINDS or parts.numbers.size > 0
        counted = kind in COUNTED_KINDS or len(parts.labels) > 0
        sketch = ExpHistogram.from_values(parts.numbers) if sketched else None
        labels = np.empty(len(parts.labels), dtype=object)
        labels[:] = parts.labels
        categories = category_counts(labels, limit=10**9) if counted else None
        values = parts.numbers if keep_values and sketched else None
        return cls(kind, int(raw.shape[0]), parts.missing, sketch, categories, values)

    def merge(self, other: FeatureWindow) -> FeatureWindow:
        sketch = None
        if self.sketch is not None or other.sketch is not None:
            sketch = ExpHistogram.merge_all([s for s in (self.sketch, other.sketch) if s is not None])
        values = None
        if self.values is not None and other.values is not None:
            values = np.concatenate([self.values, other.values])
        return FeatureWindow(
            self.kind,
            self.rows + other.rows,
            _add_counts(self.missing, other.missing) or {},
            sketch,
            _add_counts(self.categories, other.categories),
            values,
        )

    @classmethod
    def from_stats(cls, stats: WindowStats, kind: str | None = None) -> FeatureWindow:
        """A stored feature window (:class:`WindowStats`) as the engine scores it.

        ``kind`` is the feature's kind, usually the reference profile's; without it a window
        holding category counts and no sketch reads as ``categorical``, any other as
        ``numeric``. Rows are the values seen plus the missing ones, as in :meth:`from_column`.

        >>> ws = WindowStats(counters={"category": {"a": 3, "b": 1}, "missing": {"null": 1}})
        >>> w = FeatureWindow.from_stats(ws)
        >>> w.kind, w.rows, w.categories, w.missing["null"]
        ('categorical', 5, {'a': 3, 'b': 1}, 1)
        """
        sketch = stats.sketches.get("value")
        counted = stats.counters.get("category")
        if kind is None:
            kind = "categorical" if counted and sketch is None else "numeric"
        missing = dict.fromkeys(_MISSING_KINDS, 0)
        missing.update({k: int(v) for k, v in stats.counters.get("missing", {}).items()})
        categories = None
        if counted is not None or kind in ("categorical", "boolean"):
            categories = {k: int(v) for k, v in (counted or {}).items()}
        seen = (sketch.count if sketch is not None else 0) + sum((categories or {}).values())
        return cls(kind, int(seen + sum(missing.values())), missing, sketch, categories)

    def to_stats(self) -> WindowStats:
        """This window as the processor stores it (zero counts and raw values left out)."""
        out = WindowStats()
        if self.sketch is not None:
            out.sketches["value"] = self.sketch
        missing: dict[str, float] = {k: v for k, v in self.missing.items() if v}
        if missing:
            out.counters["missing"] = missing
        if self.categories:
            out.counters["category"] = {k: v for k, v in self.categories.items()}
        return out

    def as_profile(self, name: str) -> FeatureProfile:
        """This window as a reference feature (numeric part from the sketch)."""
        from infersight.stats.reference import NumericSummary

        prof = FeatureProfile(
            name,
            self.kind,
            self.rows,
            dict(self.missing),
            None,
            None if self.categories is None else dict(self.categories),
        )
        if self.values is not None:
            prof.numeric = NumericSummary.from_values(self.values)
        elif self.sketch is not None and self.sketch.count:
            # The sketch's exact knots, not bucket midpoints repeated: those would be atoms
            # the data never had (and a window of integers would look drifted from itself).
            prof.numeric = NumericSummary.from_sketch(self.sketch)
        return prof

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "missing": self.missing}
        if self.sketch is not None:
            d["sketch"] = self.sketch.to_dict()
        if self.categories is not None:
            d["categories"] = self.categories
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureWindow:
        return cls(
            str(d["kind"]),
            int(d["rows"]),
            {str(k): int(v) for k, v in d.get("missing", {}).items()},
            ExpHistogram.from_dict(d["sketch"]) if d.get("sketch") else None,
            {str(k): int(v) for k, v in d["categories"].items()} if d.get("categories") is not None else None,
        )


@dataclass
class WindowSummary:
    """Everything drift needs from one window; see the module docstring."""

    start: Any = None
    end: Any = None
    rows: int = 0
    features: dict[str, FeatureWindow] = field(default_factory=dict)
    values: dict[str, npt.NDArray[np.float64]] | None = None  # raw numeric columns (offline, for MMD)

    @classmethod
    def from_columns(
        cls,
        columns: Any,
        n_rows: int | None = None,
        *,
        start: Any = None,
        end: Any = None,
        kinds: Mapping[str, str] | None = None,
        keep_values: bool = False,
    ) -> WindowSummary:
        """Summarise a batch (columns, or any table ``to_columns`` reads).

        ``kinds`` (e.g. from the reference) fixes each column's kind; ``keep_values`` also
        keeps raw numbers for exact offline tests (not merged across processes).
        """
        if isinstance(columns, Mapping) and all(isinstance(v, np.ndarray) for v in columns.values()):
            cols = dict(columns)
            n = n_rows if n_rows is not None else (len(next(iter(cols.values()))) if cols else 0)
        else:
            cols, n = to_columns(columns)
        kinds = kinds or {}
        feats = {k: FeatureWindow.from_column(v, kinds.get(k) or infer_kind(v), keep_values) for k, v in cols.items()}
        values = None
        if keep_values:
            values = {k: clean_column(cols[k], "numeric") for k, f in feats.items() if f.kind == "numeric"}
        return cls(start, end, int(n), feats, values)

    @classmethod
    def from_stats(
        cls,
        features: Mapping[str, WindowStats],
        kinds: Mapping[str, str] | None = None,
        *,
        start: Any = None,
        end: Any = None,
    ) -> WindowSummary:
        """Stored feature windows (feature name → :class:`WindowStats`) as one summary; rows are
        the most any feature saw (a feature absent from some rows counts them as ``absent``)."""
        kinds = kinds or {}
        feats = {k: FeatureWindow.from_stats(v, kinds.get(k)) for k, v in features.items()}
        return cls(start, end, max((f.rows for f in feats.values()), default=0), feats)

    def merge(self, other: WindowSummary) -> WindowSummary:
        """The summary of both windows together (order does not matter)."""
        feats = dict(self.features)
        for k, f in other.features.items():
            feats[k] = feats[k].merge(f) if k in feats else f
        values = None
        if self.values is not None and other.values is not None:
            values = {k: np.concatenate([self.values[k], other.values[k]]) for k in self.values if k in other.values}
        starts = [s for s in (self.start, other.start) if s is not None]
        ends = [e for e in (self.end, other.end) if e is not None]
        return WindowSummary(
            min(starts) if starts else None, max(ends) if ends else None, self.rows + other.rows, feats, values
        )

    @staticmethod
    def merge_all(summaries: Iterable[WindowSummary]) -> WindowSummary:
        out = WindowSummary()
        first = True
        for s in summaries:
            out = s if first else out.merge(s)
            first = False
        return out

    def as_reference(self, model: str | None = None) -> Any:
        """This window as a :class:`Reference` (e.g. same hour last week)."""
        from infersight.stats.reference import Reference
        from infersight.stats.schema import Schema

        feats = {k: f.as_profile(k) for k, f in self.features.items()}
        return Reference(model, self.rows, feats, Schema(model=model))

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "features": {k: f.to_dict() for k, f in self.features.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowSummary:
        return cls(
            d.get("start"),
            d.get("end"),
            int(d["rows"]),
            {str(k): FeatureWindow.from_dict(v) for k, v in d["features"].items()},
        )


def sliding(summaries: Iterable[WindowSummary], size: int) -> Iterator[WindowSummary]:
    """Merged view of each run of ``size`` consecutive windows (once ``size`` have arrived)."""
    if size < 1:
        raise ValueError(f"size={size!r}: a sliding view needs at least 1 window")
    buf: list[WindowSummary] = []
    for s in summaries:
        buf.append(s)
        if len(buf) > size:
            buf.pop(0)
        if len(buf) == size:
            yield WindowSummary.merge_all(buf)


def cumulative(summaries: Iterable[WindowSummary]) -> Iterator[WindowSummary]:
    """Merged view of every window so far."""
    acc: WindowSummary | None = None
    for s in summaries:
        acc = s if acc is None else acc.merge(s)
        yield acc
