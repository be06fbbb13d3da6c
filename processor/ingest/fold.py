"""Decoded points → per-window, mergeable statistics (the processor's second stage).

A :class:`WindowStats` is what one (model, version, role, name) series holds in one time
window: exponential-histogram sketches, explicit-bucket histograms and labelled counters. All
three add up, so windows merge into larger windows and replicas into one view, in any order.

Roles: ``feature`` (name = ``ml.feature.name``), ``output`` (name = ``ml.output.name``) and
``model`` (name ``""``: latency, errors, batch sizes, spans, SDK drops).

Example:
    >>> a = WindowStats(counters={"missing": {"nan": 2}})
    >>> WindowStats.merge_all([a, WindowStats(counters={"missing": {"nan": 1, "null": 4}})]).counters
    {'missing': {'nan': 3, 'null': 4}}
"""

from __future__ import annotations

import base64
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from infersight.processor.columns import SketchColumns, merge_groups
from infersight.processor.otlp_decode import Decoded, ExplicitHistogram, LogPoint, MetricPoint, SpanPoint
from infersight.stats.sketch import ExpHistogram

__all__ = ["WindowStats", "WindowKey", "Prediction", "Feedback", "Aggregated", "aggregate", "screen", "window_start"]

FEATURE, OUTPUT, MODEL = "feature", "output", "model"


class WindowKey(NamedTuple):
    model: str
    version: str
    role: str
    name: str
    size: int  # window length, seconds
    start: int  # Unix seconds, a multiple of size


@dataclass
class WindowStats:
    """Mergeable statistics of one series in one window."""

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

    def to_json(self) -> str:
        # Written by hand rather than through json.dumps of nested dicts: this runs once per
        # stored window on the commit path. The text is what json.dumps would write.
        sketches = ",".join(f"{_key_json(k)}:{_sketch_json(v)}" for k, v in self.sketches.items())
        hists = _dumps({k: v.to_dict() for k, v in self.histograms.items()}) if self.histograms else "{}"
        counters = _dumps(self.counters) if self.counters else "{}"
        return f'{{"s":{{{sketches}}},"h":{hists},"c":{counters}}}'

    @staticmethod
    def to_json_many(items: Sequence[WindowStats]) -> list[str]:
        """``[ws.to_json() for ws in items]``, with the bucket counts of every sketch packed
        in a few whole-array passes instead of a few numpy calls per sketch."""
        sketches = [s for ws in items for s in ws.sketches.values()]
        packed = _pack_many([b.counts for s in sketches for b in (s.positive, s.negative)])
        out = []
        i = 0
        for ws in items:
            parts = []
            for k, s in ws.sketches.items():
                parts.append(f"{_key_json(k)}:{_sketch_json(s, packed[i], packed[i + 1])}")
                i += 2
            hists = _dumps({k: v.to_dict() for k, v in ws.histograms.items()}) if ws.histograms else "{}"
            counters = _dumps(ws.counters) if ws.counters else "{}"
            out.append(f'{{"s":{{{",".join(parts)}}},"h":{hists},"c":{counters}}}')
        return out

    @classmethod
    def from_json(cls, text: str) -> WindowStats:
        d = json.loads(text)
        return cls(
            {k: _unpack_sketch(v) for k, v in d.get("s", {}).items()},
            {k: ExplicitHistogram.from_dict(v) for k, v in d.get("h", {}).items()},
            d.get("c", {}),
        )


def _dumps(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"))


_KEY_JSON: dict[str, str] = {}


def _key_json(name: str) -> str:
    """A sketch name as JSON text (there are a handful: ``value``, ``duration``, ...)."""
    text = _KEY_JSON.get(name)
    if text is None:
        text = _dumps(name)
        if len(_KEY_JSON) < 1000:
            _KEY_JSON[name] = text
    return text


def _sketch_json(s: ExpHistogram, pos: str | None = None, neg: str | None = None) -> str:
    """``_dumps(_compact_sketch(s))``, faster for the usual sketch (finite numbers); ``pos`` and
    ``neg`` are the packed counts when the caller has them already."""
    if not (math.isfinite(s.sum) and math.isfinite(s.min) and math.isfinite(s.max)):
        return _dumps(_compact_sketch(s))
    text = (
        f'{{"scale":{int(s.scale)},"zero_count":{int(s.zero_count)},"count":{int(s.count)},'
        f'"sum":{float(s.sum)!r},"min":{float(s.min)!r},"max":{float(s.max)!r},"max_size":{int(s.max_size)}'
    )
    if s.positive.counts.size:
        text += f',"positive":{{"offset":{int(s.positive.offset)},"packed":"{pos or _pack(s.positive.counts)}"}}'
    if s.negative.counts.size:
        text += f',"negative":{{"offset":{int(s.negative.offset)},"packed":"{neg or _pack(s.negative.counts)}"}}'
    return text + "}"


def _compact_sketch(s: ExpHistogram) -> dict[str, Any]:
    """A sketch as stored: bucket counts packed as base64 of the narrowest unsigned type that
    holds them (most windows need one byte per bucket), because JSON lists of integers were
    most of the ingest cost and most of a row's bytes."""
    d: dict[str, Any] = {
        "scale": s.scale,
        "zero_count": s.zero_count,
        "count": s.count,
        "sum": s.sum,
        "min": None if math.isnan(s.min) else s.min,
        "max": None if math.isnan(s.max) else s.max,
        "max_size": s.max_size,
    }
    for sign, b in (("positive", s.positive), ("negative", s.negative)):
        if b.counts.size:
            d[sign] = {"offset": b.offset, "packed": _pack(b.counts)}
    return d


def _pack(counts: np.ndarray) -> str:
    top = int(counts.max())
    code = "B" if top < 2**8 else "H" if top < 2**16 else "I" if top < 2**32 else "Q"
    return (
        code
        + base64.b64encode(counts.astype("<" + {"B": "u1", "H": "u2", "I": "u4", "Q": "u8"}[code]).tobytes()).decode()
    )


_CODES = (("B", "<u1", 2**8), ("H", "<u2", 2**16), ("I", "<u4", 2**32), ("Q", "<u8", 2**64))


def _pack_many(arrays: Sequence[np.ndarray]) -> list[str]:
    """``_pack`` of each array ("" for an empty one), converting all arrays of one width at once."""
    out = [""] * len(arrays)
    full = [i for i, a in enumerate(arrays) if a.size]
    if not full:
        return out
    lens = np.fromiter((arrays[i].size for i in full), np.int64, len(full))
    flat = np.concatenate([arrays[i] for i in full])
    starts = np.cumsum(lens) - lens
    tops = np.maximum.reduceat(flat, starts)
    lo = 0
    for code, dtype, limit in _CODES:
        mine = np.flatnonzero((tops >= lo) & (tops < limit)) if limit < 2**64 else np.flatnonzero(tops >= lo)
        lo = limit
        if not mine.size:
            continue
        width = np.dtype(dtype).itemsize
        data = flat.astype(dtype).tobytes()
        b64 = base64.b64encode
        for j, a, n in zip(mine.tolist(), (starts[mine] * width).tolist(), (lens[mine] * width).tolist()):
            out[full[j]] = code + b64(data[a : a + n]).decode()
    return out


def _unpack_sketch(d: dict[str, Any]) -> ExpHistogram:
    for sign in ("positive", "negative"):
        b = d.get(sign)
        if b and "packed" in b:
            code, data = b["packed"][0], b["packed"][1:]
            dtype = "<" + {"B": "u1", "H": "u2", "I": "u4", "Q": "u8"}[code]
            d[sign] = {"offset": b["offset"], "counts": np.frombuffer(base64.b64decode(data), dtype).astype(np.int64)}
    return ExpHistogram.from_dict(d)


def _merge_histogram(into: dict[str, ExplicitHistogram], name: str, h: ExplicitHistogram) -> None:
    """Histograms with other bucket bounds (another producer's layout) are kept side by side
    under ``name@N`` instead of being re-binned into a layout they were not measured in."""
    key = name
    n = 1
    while key in into and into[key].bounds != h.bounds:
        key = f"{name}@{n}"
        n += 1
    into[key] = into[key].merge(h) if key in into else h


def window_start(time_ns: int, size: int) -> int:
    """Start (Unix seconds) of the ``size``-second window holding ``time_ns``.

    >>> window_start(125 * 10**9, 60)
    120
    """
    t = time_ns // 1_000_000_000
    return t - t % size


@dataclass
class Prediction:
    model: str
    version: str
    request_id: str
    time_ns: int
    trace_id: str
    span_id: str
    inputs: str | None
    outputs: str | None
    truncated: bool


@dataclass
class Feedback:
    model: str
    version: str
    request_id: str
    time_ns: int
    actual: str


@dataclass
class Aggregated:
    """Everything one batch of requests adds: window rows, prediction and feedback records,
    and what was ignored (unknown metric names and events, counted, not stored)."""

    windows: dict[WindowKey, WindowStats] = field(default_factory=dict)
    predictions: list[Prediction] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=lambda: defaultdict(int))


# metric name -> (role, attribute naming the series, how the point is stored)
_KNOWN: dict[str, tuple[str, str | None, str, str | None]] = {
    # name: (role, series attribute, stored as (sketch|hist|counter group), counter label attribute)
    "ml.feature.value": (FEATURE, "ml.feature.name", "value", None),
    "ml.feature.category": (FEATURE, "ml.feature.name", "category", "ml.category.value"),
    "ml.feature.missing": (FEATURE, "ml.feature.name", "missing", "ml.missing.kind"),
    "ml.schema.violations": (FEATURE, "ml.feature.name", "violations", "ml.schema.rule"),
    "ml.prediction.value": (OUTPUT, "ml.output.name", "value", None),
    "ml.prediction.class": (OUTPUT, "ml.output.name", "class", "ml.prediction.label"),
    "ml.prediction.null": (OUTPUT, "ml.output.name", "null", "ml.null.kind"),
    "ml.inference.duration": (MODEL, None, "duration", None),
    "ml.inference.batch_size": (MODEL, None, "batch_size", None),
    "ml.telemetry.dropped": (MODEL, None, "dropped", "ml.telemetry.reason"),
}


class _Builder:
    """Collects base-window parts, merged once per key at the end."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.parts: dict[WindowKey, list[WindowStats]] = defaultdict(list)
        self.durations: dict[WindowKey, list[float]] = defaultdict(list)

    def part(self, model: str, version: str, role: str, name: str, time_ns: int) -> WindowStats:
        key = WindowKey(model, version, role, name, self.base, window_start(time_ns, self.base))
        ws = WindowStats()
        self.parts[key].append(ws)
        return ws


def aggregate(
    metrics: Sequence[MetricPoint],
    spans: Sequence[SpanPoint],
    logs: Sequence[LogPoint],
    sizes: Sequence[int],
    columns: Sequence[SketchColumns] = (),
) -> Aggregated:
    """Fold delta points (and columnar exponential-histogram points) into windows of every
    size in ``sizes`` (base first, then roll-ups, each a multiple of the one before), plus
    prediction/feedback records from logs. Pass ``sizes=(base,)`` for base windows only.

    Roll-up windows are derived from the merged base windows, so a batch costs one sketch
    merge per key and level rather than one per point and level.
    """
    out = Aggregated()
    b = _Builder(sizes[0])
    _add_columns(b, columns, out)
    for p in metrics:
        _add_metric(b, p, out)
    for s in spans:
        _add_span(b, s, out)
    for rec in logs:
        _add_log(rec, out)
    base: dict[WindowKey, WindowStats] = {}
    for key, parts in b.parts.items():
        base[key] = parts[0] if len(parts) == 1 else WindowStats.merge_all(parts)
    for key, durations in b.durations.items():
        ws = base.setdefault(key, WindowStats())
        ws.sketches["span_duration"] = ExpHistogram.from_values(np.asarray(durations))
    out.windows.update(base)
    for size in sizes[1:]:
        grouped: dict[WindowKey, list[WindowStats]] = defaultdict(list)
        for key, ws in base.items():
            grouped[key._replace(size=size, start=key.start - key.start % size)].append(ws)
        for key, items in grouped.items():
            out.windows[key] = items[0] if len(items) == 1 else WindowStats.merge_all(items)
    return out


def _add_columns(b: _Builder, columns: Sequence[SketchColumns], out: Aggregated) -> None:
    """Columnar exponential-histogram points → one merged sketch per (series, window), for the
    whole batch in one :func:`merge_groups` call."""
    series: dict[tuple[Any, ...], int] = {}
    parts: list[SketchColumns] = []
    ids: list[np.ndarray] = []
    for c in columns:
        spec = _KNOWN.get(c.name)
        if spec is None:
            out.ignored[f"metric:{c.name}"[:120]] += len(c)
            continue
        found = (
            c.series if c.series is not None else [_columns_series(c, a, k)[1] for a, k in zip(c.attrs, c.attr_keys)]
        )
        sid = np.array([-1 if k is None else series.setdefault(k, len(series)) for k in found], np.int64)
        pt_sid = sid[c.attr_index]
        if (pt_sid < 0).any():  # screened out (and reported) before it reached the writer
            keep = pt_sid >= 0
            c, pt_sid = c.take(keep), pt_sid[keep]
        parts.append(c)
        ids.append(pt_sid)
    if not parts:
        return
    cols = SketchColumns.concat(parts, ids)
    t = cols.time_ns // 1_000_000_000
    start = t - t % b.base
    lo = int(start.min()) if start.size else 0
    code = (cols.attr_index << 32) | ((start - lo) // b.base)
    keys, group = np.unique(code, return_inverse=True)
    sketches = merge_groups(group.ravel().astype(np.int64), keys.size, cols)
    by_id = list(series)
    for k, sk in zip(keys.tolist(), sketches):
        model, version, role, name, slot, etype = by_id[k >> 32]
        ws = WindowStats()
        b.parts[WindowKey(model, version, role, name, b.base, lo + (k & 0xFFFFFFFF) * b.base)].append(ws)
        if sk is None:
            continue
        ws.sketches[slot] = sk
        if role == MODEL and slot == "duration":
            _count_calls(ws, {} if etype is None else {"error.type": etype}, sk.count)


def screen(signal: str, decoded: Decoded) -> Decoded:
    """Move the points windows cannot place (an ``ml.*`` point without its model or series
    attribute, a prediction log without a request id) from ``points`` to ``rejected``, so the
    request that carried them is told (OTLP partial success). Unknown names pass: they are
    ignored and counted later, not rejected.
    """
    check = {"metrics": _metric_problem, "traces": _no_problem, "logs": _log_problem}[signal]
    keep = []
    for p in decoded.points:
        why = check(p)
        if why is None:
            keep.append(p)
        else:
            decoded.reject(why)
    decoded.points = keep
    for i, c in enumerate(decoded.columns):
        looked = [_columns_series(c, attrs, key) for attrs, key in zip(c.attrs, c.attr_keys)]
        c.series = [found for _, found in looked]  # kept for aggregate(), which needs them again
        bad = [why for why, _ in looked]
        if any(bad):
            ok = np.array([why is None for why in bad])
            for j, why in enumerate(bad):
                if why is not None:
                    decoded.reject(why, int((c.attr_index == j).sum()))
            decoded.columns[i] = c.take(ok[c.attr_index])
    decoded.columns = [c for c in decoded.columns if len(c)]
    return decoded


def _no_problem(p: Any) -> str | None:
    return None


def _metric_problem(p: MetricPoint) -> str | None:
    spec = _KNOWN.get(p.name)
    if spec is None:
        return None
    if _identity(p.attributes, p.resource) is None:
        return f"{p.name}: point has no ml.model.name attribute"
    series_attr, label_attr = spec[1], spec[3]
    if series_attr is not None and p.attributes.get(series_attr) in (None, ""):
        return f"{p.name}: point has no {series_attr} attribute"
    if p.kind == "sum" and label_attr is not None and p.attributes.get(label_attr) is None:
        return f"{p.name}: point has no {label_attr} attribute"
    return None


# (metric name, attributes, resource's model) -> (problem, series); bounded like the decoder's cache.
_SERIES: dict[tuple[Any, ...], tuple[str | None, tuple[Any, ...] | None]] = {}


def _columns_series(c: SketchColumns, attrs: dict[str, Any], key: Any) -> tuple[str | None, tuple[Any, ...] | None]:
    """Why the points of ``c`` with these attributes cannot be placed (or ``None``), and the
    series they belong to: (model, version, role, name, slot, error.type for durations)."""
    ck = (c.name, key, c.resource.get("ml.model.name"), c.resource.get("ml.model.version"))
    hit = _SERIES.get(ck)
    if hit is None:
        if len(_SERIES) > 200_000:
            _SERIES.clear()
        why = _metric_problem(MetricPoint(c.name, "exponential_histogram", c.resource, attrs, 0, 0))
        ident = _identity(attrs, c.resource)
        spec = _KNOWN.get(c.name)
        found = None
        if why is None and ident is not None and spec is not None:
            role, series_attr, slot, _ = spec
            name = "" if series_attr is None else str(attrs[series_attr])
            # Calls are counted per error.type, so that attribute separates groups of durations.
            etype = attrs.get("error.type") if role == MODEL and slot == "duration" else None
            found = (ident[0], ident[1], role, name, slot, etype)
        hit = _SERIES[ck] = (why, found)
    return hit


def _log_problem(rec: LogPoint) -> str | None:
    if rec.event_name not in ("ml.prediction", "ml.feedback"):
        return None
    if _identity(rec.attributes, rec.resource) is None or not rec.attributes.get("ml.request.id"):
        return f"{rec.event_name} log record needs ml.model.name and ml.request.id attributes"
    if rec.event_name == "ml.feedback" and rec.attributes.get("ml.feedback.actual") is None:
        return "ml.feedback log record has no ml.feedback.actual attribute"
    return None


def _identity(attrs: dict[str, Any], resource: dict[str, Any]) -> tuple[str, str] | None:
    model = attrs.get("ml.model.name", resource.get("ml.model.name"))
    if model is None or model == "":
        return None
    version = attrs.get("ml.model.version", resource.get("ml.model.version", ""))
    return str(model), str(version)


def _add_metric(b: _Builder, p: MetricPoint, out: Aggregated) -> None:
    spec = _KNOWN.get(p.name)
    if spec is None:
        out.ignored[f"metric:{p.name}"[:120]] += 1
        return
    role, series_attr, slot, label_attr = spec
    ident = _identity(p.attributes, p.resource)
    if ident is None or _metric_problem(p):
        return  # screened out (and reported) before it reached the writer
    series = "" if series_attr is None else str(p.attributes[series_attr])
    ws = b.part(ident[0], ident[1], role, series, p.time_ns)
    if p.kind == "exponential_histogram" and p.sketch is not None:
        if p.sketch.count:
            ws.sketches[slot] = p.sketch
        if role == MODEL and slot == "duration":
            _count_calls(ws, p.attributes, p.sketch.count)
    elif p.kind == "histogram" and p.histogram is not None:
        ws.histograms[slot] = p.histogram
        if role == MODEL and slot == "duration":
            _count_calls(ws, p.attributes, p.histogram.count)
    elif p.kind == "sum" and label_attr is not None and p.value is not None:
        if p.value:
            ws.add_count(slot, str(p.attributes[label_attr]), _int_if_whole(p.value))
    else:
        out.ignored[f"kind:{p.name}:{p.kind}"[:120]] += 1


def _count_calls(ws: WindowStats, attrs: dict[str, Any], n: int) -> None:
    if not n:
        return
    ws.add_count("calls", "total", n)
    etype = attrs.get("error.type")
    if etype is not None:
        ws.add_count("calls", "error", n)
        ws.add_count("errors", str(etype), n)


def _int_if_whole(v: float) -> float:
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else v


def _add_span(b: _Builder, s: SpanPoint, out: Aggregated) -> None:
    ident = _identity(s.attributes, s.resource)
    if ident is None:
        out.ignored["span:without ml.model.name"] += 1
        return
    ws = b.part(ident[0], ident[1], MODEL, "", s.end_ns)
    ws.add_count("spans", "total", 1)
    if s.error:
        ws.add_count("spans", "error", 1)
        ws.add_count("span_errors", s.error_type or "_OTHER", 1)
    if s.end_ns >= s.start_ns and math.isfinite(s.duration_s):
        b.durations[WindowKey(ident[0], ident[1], MODEL, "", b.base, window_start(s.end_ns, b.base))].append(
            s.duration_s
        )


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v)


def _add_log(rec: LogPoint, out: Aggregated) -> None:
    if rec.event_name not in ("ml.prediction", "ml.feedback"):
        out.ignored[f"log:{rec.event_name or '(no event name)'}"[:120]] += 1
        return
    ident = _identity(rec.attributes, rec.resource)
    if ident is None or _log_problem(rec):
        return  # screened out (and reported) before it reached the writer
    rid = rec.attributes["ml.request.id"]
    if rec.event_name == "ml.prediction":
        out.predictions.append(
            Prediction(
                ident[0],
                ident[1],
                str(rid),
                rec.time_ns,
                rec.trace_id,
                rec.span_id,
                _json_text(rec.attributes.get("ml.inputs")),
                _json_text(rec.attributes.get("ml.outputs")),
                bool(rec.attributes.get("ml.payload.truncated", False)),
            )
        )
    else:
        actual = rec.attributes["ml.feedback.actual"]
        out.feedback.append(Feedback(ident[0], ident[1], str(rid), rec.time_ns, _json_text(actual) or ""))
