"""Per-model statistics of inputs, outputs and calls, kept between metric exports.

The request path only appends: one float per numeric feature for a one-row call, one numpy
column per feature for a batch. Buffers are folded into :class:`ExpHistogram` sketches when
they grow (bounded memory) and at export time, off the request path, where :meth:`drain`
turns everything into OpenTelemetry metric points (delta temporality) for the exporter.

Example:
    >>> acc = FeatureStats(max_categories=10, max_attribute_sets=100)
    >>> acc.record_row(("churn", "1"), {"age": 41.0, "plan": "pro", "income": None})
    >>> [m.name for m in acc.drain(0, 1)][:3]
    ['ml.feature.value', 'ml.feature.category', 'ml.feature.missing']
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import numpy.typing as npt
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.export import Buckets as OtelBuckets
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

from infersight.payload import TEXT_MIN_LENGTH, Normalized, Outputs, _AbsentType
from infersight.sketch import ExpHistogram

__all__ = ["FeatureStats", "ModelKey", "DURATION_BOUNDS", "OTHER", "OVERFLOW_ATTRIBUTES"]

ModelKey = tuple[str, str]  # (model name, model version)

OTHER = "__other__"
OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}
# Seconds; fine at the low end where model latency SLOs live (OTel's HTTP defaults start at 5 ms).
DURATION_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
                   0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)
_FOLD_AT = 2048  # buffered values per feature before folding into the sketch


@dataclass
class _Numeric:
    """A sketch plus not-yet-sketched values (floats from rows, arrays from batches)."""

    sketch: ExpHistogram | None = None
    scalars: list[float] = field(default_factory=list)
    arrays: list[npt.NDArray[np.float64]] = field(default_factory=list)
    pending: int = 0

    def fold(self) -> None:
        parts = self.arrays
        if self.scalars:
            parts = parts + [np.asarray(self.scalars, dtype=np.float64)]
        if not parts:
            return
        values = parts[0] if len(parts) == 1 else np.concatenate(parts)
        new = ExpHistogram.from_values(values)
        self.sketch = new if self.sketch is None else self.sketch.merge(new)
        self.scalars, self.arrays, self.pending = [], [], 0

    def result(self) -> ExpHistogram | None:
        self.fold()
        return self.sketch


@dataclass
class _Hist:
    """Explicit-bucket histogram: a buffer of values folded into counts at export."""

    bounds: tuple[float, ...]
    values: list[float] = field(default_factory=list)
    counts: npt.NDArray[np.int64] | None = None
    total: float = 0.0
    n: int = 0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, v: float) -> None:
        self.values.append(v)
        if len(self.values) >= _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        if not self.values:
            return
        arr = np.asarray(self.values, dtype=np.float64)
        self.values = []
        # Bucket i holds (bounds[i-1], bounds[i]], as OTel explicit histograms do.
        c = np.bincount(np.searchsorted(self.bounds, arr, side="left"), minlength=len(self.bounds) + 1)
        self.counts = c if self.counts is None else self.counts + c
        self.total += float(arr.sum())
        self.n += arr.size
        self.lo = min(self.lo, float(arr.min()))
        self.hi = max(self.hi, float(arr.max()))


class _State:
    """Everything recorded since the last export."""

    def __init__(self) -> None:
        self.numeric: dict[tuple[str, str, str, str], _Numeric] = {}  # metric, model, version, name
        self.counters: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = {}
        self.hists: dict[tuple[str, tuple[tuple[str, Any], ...]], _Hist] = {}


class FeatureStats:
    """Thread-safe accumulator of the ``ml.*`` statistics of every monitored model."""

    def __init__(self, max_categories: int = 100, max_attribute_sets: int = 2000) -> None:
        self.max_categories = max_categories
        self.max_attribute_sets = max_attribute_sets
        self._lock = threading.Lock()
        self._state = _State()
        # Stable across exports, so the same values map to the same buckets window after window.
        self._categories: dict[tuple[str, str, str], set[str]] = {}
        self._known: dict[ModelKey, set[str]] = {}
        self._sets = 0

    # -- request path ---------------------------------------------------------------------

    def _count(self, metric: str, attrs: tuple[tuple[str, Any], ...], n: float = 1) -> None:
        key = (metric, attrs)
        c = self._state.counters
        if key in c:
            c[key] += n
            return
        if self._sets >= self.max_attribute_sets:
            self._count_overflow(metric, n)
            return
        self._sets += 1
        c[key] = n

    def _count_overflow(self, metric: str, n: float) -> None:
        key = (metric, tuple(OVERFLOW_ATTRIBUTES.items()))
        self._state.counters[key] = self._state.counters.get(key, 0) + n
        dkey = ("ml.telemetry.dropped", (("ml.telemetry.reason", "cardinality_limit"),))
        self._state.counters[dkey] = self._state.counters.get(dkey, 0) + 1

    def _numeric(self, metric: str, model: ModelKey, name: str) -> _Numeric | None:
        key = (metric, model[0], model[1], name)
        num = self._state.numeric.get(key)
        if num is None:
            if self._sets >= self.max_attribute_sets:
                self._count_overflow(metric, 1)
                return None
            self._sets += 1
            num = self._state.numeric[key] = _Numeric()
        return num

    def _category(self, model: ModelKey, name: str, value: str) -> str:
        seen = self._categories.setdefault((model[0], model[1], name), set())
        if value in seen:
            return value
        if len(seen) < self.max_categories:
            seen.add(value)
            return value
        return OTHER

    def known_features(self, model: ModelKey) -> set[str]:
        return self._known.get(model, set())

    def record_row(self, model: ModelKey, row: Mapping[str, Any]) -> None:
        """One row: a short Python loop (cheaper than numpy set-up for a handful of values)."""
        m, v = model
        with self._lock:
            known = self._known.get(model)
            if known is None:
                known = self._known[model] = set()
            for name, value in row.items():
                if name not in known:
                    known.add(name)
                if value is None:
                    self._count("ml.feature.missing", _attrs(m, v, name, "null"))
                elif isinstance(value, float):
                    if value - value != 0.0:  # NaN or ±Inf, without two isnan/isinf calls
                        kind = "nan" if value != value else "inf"
                        self._count("ml.feature.missing", _attrs(m, v, name, kind))
                    else:
                        self._append("ml.feature.value", model, name, value)
                elif isinstance(value, bool):
                    self._count("ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, str(value).lower())))
                elif isinstance(value, int):
                    self._append("ml.feature.value", model, name, float(value))
                elif isinstance(value, str):
                    if len(value) >= TEXT_MIN_LENGTH:
                        self._append("ml.feature.value", model, name, float(len(value)))
                    else:
                        self._count("ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, value)))
                else:
                    self._record_other(model, name, value)
            if len(row) < len(known):
                for name in known.difference(row):
                    self._count("ml.feature.missing", _attrs(m, v, name, "absent"))

    def _record_other(self, model: ModelKey, name: str, value: Any) -> None:
        m, v = model
        if isinstance(value, np.generic):
            item = value.item()
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                f = float(item)
                if math.isfinite(f):
                    self._append("ml.feature.value", model, name, f)
                else:
                    self._count("ml.feature.missing", _attrs(m, v, name, "nan" if math.isnan(f) else "inf"))
                return
            if isinstance(item, (bool, str)):
                self._count("ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, str(item))))
                return
        if isinstance(value, (list, tuple, np.ndarray)):
            # Arrays (embeddings, token lists) are summarised by their length.
            self._append("ml.feature.value", model, name, float(len(value)))
            return
        self._count("ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, type(value).__name__)))

    def _append(self, metric: str, model: ModelKey, name: str, value: float) -> None:
        num = self._numeric(metric, model, name)
        if num is None:
            return
        num.scalars.append(value)
        if len(num.scalars) >= _FOLD_AT:
            num.fold()

    def _append_array(self, metric: str, model: ModelKey, name: str, values: npt.NDArray[np.float64]) -> None:
        if values.size == 0:
            return
        num = self._numeric(metric, model, name)
        if num is None:
            return
        num.arrays.append(values)
        num.pending += values.size
        if num.pending >= _FOLD_AT:
            num.fold()

    def record_columns(self, model: ModelKey, norm: Normalized) -> None:
        """A batch: each column handled with a few numpy operations."""
        if norm.row is not None:
            self.record_row(model, norm.row)
            return
        m, v = model
        cols = norm.columns or {}
        with self._lock:
            known = self._known.setdefault(model, set())
            for name, col in cols.items():
                known.add(name)
                self._record_column(model, name, col)
            for name in known.difference(cols):
                self._count("ml.feature.missing", _attrs(m, v, name, "absent"), norm.n_rows)

    def _record_column(self, model: ModelKey, name: str, col: npt.NDArray[Any]) -> None:
        m, v = model
        if col.dtype.kind == "f":
            finite = np.isfinite(col)
            if not finite.all():
                nan = int(np.isnan(col).sum())
                inf = int(col.size - finite.sum() - nan)
                # NaN in a float column may have been None in the payload: count it as nan.
                if nan:
                    self._count("ml.feature.missing", _attrs(m, v, name, "nan"), nan)
                if inf:
                    self._count("ml.feature.missing", _attrs(m, v, name, "inf"), inf)
                col = col[finite]
            self._append_array("ml.feature.value", model, name, col)
            return
        if col.dtype.kind == "b":
            t = int(col.sum())
            for label, n in (("true", t), ("false", col.size - t)):
                if n:
                    self._count("ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, label)), n)
            return
        # object column: strings, None, absent markers, mixed types
        nulls = absent = 0
        lengths: list[float] = []
        counts: dict[str, int] = {}
        for x in col.tolist():
            if x is None:
                nulls += 1
            elif isinstance(x, _AbsentType):
                absent += 1
            elif isinstance(x, str):
                if len(x) >= TEXT_MIN_LENGTH:
                    lengths.append(float(len(x)))
                else:
                    counts[x] = counts.get(x, 0) + 1
            elif isinstance(x, float) and not math.isfinite(x):
                k = "nan" if math.isnan(x) else "inf"
                self._count("ml.feature.missing", _attrs(m, v, name, k))
            elif isinstance(x, (int, float)) and not isinstance(x, bool):
                lengths.append(float(x))
            else:
                label = str(x).lower() if isinstance(x, bool) else type(x).__name__
                counts[label] = counts.get(label, 0) + 1
        if nulls:
            self._count("ml.feature.missing", _attrs(m, v, name, "null"), nulls)
        if absent:
            self._count("ml.feature.missing", _attrs(m, v, name, "absent"), absent)
        if lengths:
            self._append_array("ml.feature.value", model, name, np.asarray(lengths))
        for label, n in counts.items():
            self._count("ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, label)), n)

    def record_outputs(self, model: ModelKey, out: Outputs) -> None:
        m, v = model
        with self._lock:
            for name, values in out.values.items():
                if values.size == 1:
                    self._append("ml.prediction.value", model, name, float(values[0]))
                else:
                    self._append_array("ml.prediction.value", model, name, values)
            for name, labels in out.labels.items():
                for label in labels:
                    self._count(
                        "ml.prediction.class",
                        (("ml.model.name", m), ("ml.model.version", v), ("ml.output.name", name),
                         ("ml.prediction.label", self._category(model, "\x00" + name, label))),
                    )
            for (name, kind), n in out.nulls.items():
                self._count(
                    "ml.prediction.null",
                    (("ml.model.name", m), ("ml.model.version", v), ("ml.output.name", name), ("ml.null.kind", kind)),
                    n,
                )

    def record_call(self, model: ModelKey, seconds: float, rows: int, error_type: str | None) -> None:
        m, v = model
        attrs: tuple[tuple[str, Any], ...] = (("ml.model.name", m), ("ml.model.version", v))
        with self._lock:
            self._hist("ml.inference.batch_size", attrs, BATCH_BOUNDS, float(rows))
            if error_type is not None:
                attrs = attrs + (("error.type", error_type),)
            self._hist("ml.inference.duration", attrs, DURATION_BOUNDS, seconds)

    def _hist(self, metric: str, attrs: tuple[tuple[str, Any], ...], bounds: tuple[float, ...], value: float) -> None:
        key = (metric, attrs)
        h = self._state.hists.get(key)
        if h is None:
            if self._sets >= self.max_attribute_sets:
                self._count_overflow(metric, 1)
                return
            self._sets += 1
            h = self._state.hists[key] = _Hist(bounds)
        h.add(value)

    def record_violations(self, model: ModelKey, violations: Iterable[tuple[str, str, int]]) -> None:
        m, v = model
        with self._lock:
            for feature, rule, n in violations:
                self._count(
                    "ml.schema.violations",
                    (("ml.model.name", m), ("ml.model.version", v), ("ml.feature.name", feature), ("ml.schema.rule", rule)),
                    n,
                )

    def count_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            key = ("ml.telemetry.dropped", (("ml.telemetry.reason", reason),))
            self._state.counters[key] = self._state.counters.get(key, 0) + n

    # -- export path ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything pending (a forked child must not re-export its parent's data)."""
        self._lock = threading.Lock()
        self._state = _State()
        self._sets = 0

    def drain(self, start_ns: int, end_ns: int) -> list[Metric]:
        """Everything recorded since the last drain, as OTel metrics with delta temporality."""
        with self._lock:
            state, self._state = self._state, _State()
            self._sets = 0
        metrics: list[Metric] = []
        delta = AggregationTemporality.DELTA
        by_metric: dict[str, list[Any]] = {}
        for (metric, m, v, name), num in state.numeric.items():
            sk = num.result()
            if sk is None or sk.count == 0:
                continue
            attr_name = "ml.feature.name" if metric == "ml.feature.value" else "ml.output.name"
            by_metric.setdefault(metric, []).append(
                _exp_point({"ml.model.name": m, "ml.model.version": v, attr_name: name}, sk, start_ns, end_ns)
            )
        for metric in ("ml.feature.value", "ml.prediction.value"):
            if metric in by_metric:
                metrics.append(Metric(metric, _DESCRIPTIONS[metric], "1", ExponentialHistogram(by_metric[metric], delta)))
        sums: dict[str, list[NumberDataPoint]] = {}
        for (metric, attrs), n in state.counters.items():
            sums.setdefault(metric, []).append(
                NumberDataPoint(dict(attrs), start_ns, end_ns, int(n) if float(n).is_integer() else n)
            )
        for metric, points in sums.items():
            metrics.append(Metric(metric, _DESCRIPTIONS.get(metric, ""), "1", Sum(points, delta, True)))
        hists: dict[str, list[HistogramDataPoint]] = {}
        for (metric, attrs), h in state.hists.items():
            h.fold()
            if h.counts is None:
                continue
            hists.setdefault(metric, []).append(
                HistogramDataPoint(dict(attrs), start_ns, end_ns, h.n, h.total, h.counts.tolist(), list(h.bounds), h.lo, h.hi)
            )
        for metric, points in hists.items():
            unit = "s" if metric == "ml.inference.duration" else "1"
            metrics.append(Metric(metric, _DESCRIPTIONS[metric], unit, Histogram(points, delta)))
        return metrics


def _attrs(m: str, v: str, name: str, kind: str) -> tuple[tuple[str, Any], ...]:
    return (("ml.model.name", m), ("ml.model.version", v), ("ml.feature.name", name), ("ml.missing.kind", kind))


def _cat_attrs(m: str, v: str, name: str, value: str) -> tuple[tuple[str, Any], ...]:
    return (("ml.model.name", m), ("ml.model.version", v), ("ml.feature.name", name), ("ml.category.value", value))


def _exp_point(attrs: dict[str, Any], sk: ExpHistogram, start_ns: int, end_ns: int) -> ExponentialHistogramDataPoint:
    return ExponentialHistogramDataPoint(
        attributes=attrs,
        start_time_unix_nano=start_ns,
        time_unix_nano=end_ns,
        count=sk.count,
        sum=sk.sum,
        scale=sk.scale,
        zero_count=sk.zero_count,
        positive=OtelBuckets(sk.positive.offset, sk.positive.counts.tolist()),
        negative=OtelBuckets(sk.negative.offset, sk.negative.counts.tolist()),
        flags=0,
        min=sk.min,
        max=sk.max,
    )


_DESCRIPTIONS = {
    "ml.feature.value": "Distribution of each numeric input feature (text: length)",
    "ml.feature.category": "Count of each categorical feature value (bounded; rest __other__)",
    "ml.feature.missing": "Missing feature values by kind: absent, null, nan, inf",
    "ml.prediction.value": "Distribution of numeric outputs and scores",
    "ml.prediction.class": "Count of each predicted class (bounded)",
    "ml.prediction.null": "Outputs that were None, NaN or the configured default answer",
    "ml.schema.violations": "Rows violating a schema rule, by feature and rule",
    "ml.telemetry.dropped": "Telemetry the SDK dropped, by reason",
    "ml.inference.duration": "Duration of each predict call",
    "ml.inference.batch_size": "Rows per predict call",
}
