"""Decoded points → per-window, mergeable statistics (the processor's second stage).

Each series (model, version, role, name) gets one :class:`~infersight.stats.windows.WindowStats`
per window: exponential-histogram sketches, explicit-bucket histograms and labelled counters,
the statistics engine's own window model. All three add up, so windows merge into larger
windows and replicas into one view, in any order. Prediction and feedback log records become
records of their own.

Roles: ``feature`` (name = ``ml.feature.name``), ``output`` (name = ``ml.output.name``) and
``model`` (name ``""``: latency, errors, batch sizes, spans, SDK drops).

Example:
    >>> from infersight.processor.ingest.points import MetricPoint
    >>> p = MetricPoint("ml.feature.missing", "sum", {}, {"ml.model.name": "m",
    ...     "ml.feature.name": "age", "ml.missing.kind": "nan"}, 0, 61 * 10**9, value=2.0)
    >>> agg = aggregate([p], [], [], (60,))
    >>> [(k.name, k.start, ws.counters) for k, ws in agg.windows.items()]
    [('age', 60, {'missing': {'nan': 2}})]
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infersight.processor.ingest.columns import SketchColumns, merge_groups, trimmed_runs
from infersight.processor.ingest.outcomes import OUTCOMES_EVENT, outcome_rows
from infersight.processor.ingest.points import LogPoint, MetricPoint, SpanPoint
from infersight.processor.ingest.screen import (
    KNOWN,
    columns_series,
    identity,
    log_problem,
    metric_problem,
    series_role,
)
from infersight.processor.storage.base import MODEL, Feedback, Outcome, Prediction, WindowKey
from infersight.processor.storage.codec import decode_window, pack_columns
from infersight.stats.sketch import DEFAULT_MAX_SIZE, ExpHistogram
from infersight.stats.windows import WindowStats

__all__ = ["Aggregated", "aggregate", "window_start"]


def window_start(time_ns: int, size: int) -> int:
    """Start (Unix seconds) of the ``size``-second window holding ``time_ns``.

    >>> window_start(125 * 10**9, 60)
    120
    """
    t = time_ns // 1_000_000_000
    return t - t % size


@dataclass
class Aggregated:
    """Everything one batch of requests adds: window rows, prediction and feedback records,
    and what was ignored (unknown metric names and events, counted, not stored)."""

    windows: dict[WindowKey, WindowStats] = field(default_factory=dict)
    # base windows already in their stored form (``aggregate(..., packed=True)``)
    packed: dict[WindowKey, bytes] = field(default_factory=dict)
    predictions: list[Prediction] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class _Builder:
    """Collects base-window parts, merged once per key at the end."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.parts: dict[WindowKey, list[WindowStats]] = defaultdict(list)
        self.durations: dict[WindowKey, list[float]] = defaultdict(list)
        self.packed: dict[WindowKey, bytes] = {}

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
    *,
    packed: bool = False,
) -> Aggregated:
    """Fold delta points (and columnar exponential-histogram points) into windows of every
    size in ``sizes`` (base first, then roll-ups, each a multiple of the one before), plus
    prediction/feedback records from logs. Pass ``sizes=(base,)`` for base windows only.

    Roll-up windows are derived from the merged base windows, so a batch costs one sketch
    merge per key and level rather than one per point and level.

    With ``packed`` (base windows only), a feature's or output's window that one columnar
    point makes alone (the exporter pattern: one point per series per window) goes to
    ``Aggregated.packed`` in its stored form (:func:`~infersight.processor.storage.codec.pack_windows`
    of the window ``windows`` would hold, byte for byte), without a sketch object per point.
    """
    if packed and len(sizes) > 1:
        raise ValueError(f"aggregate(packed=True) folds base windows only; got sizes {tuple(sizes)}")
    out = Aggregated()
    b = _Builder(sizes[0])
    _add_columns(b, columns, out, packed)
    for p in metrics:
        _add_metric(b, p, out)
    for s in spans:
        _add_span(b, s, out)
    for rec in logs:
        _add_log(rec, out)
    for key, row in b.packed.items():
        if key in b.parts or key in b.durations:  # the window has other parts: merged as one
            b.parts[key].insert(0, decode_window(row))
        else:
            out.packed[key] = row
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


def _add_columns(b: _Builder, columns: Sequence[SketchColumns], out: Aggregated, packed: bool = False) -> None:
    """Columnar exponential-histogram points → one merged sketch per (series, window), for the
    whole batch in one :func:`merge_groups` call (with ``packed``, points alone in a feature's
    or output's window go to ``b.packed`` in their stored form instead)."""
    series: dict[tuple[Any, ...], int] = {}
    parts: list[SketchColumns] = []
    ids: list[np.ndarray] = []
    for c in columns:
        spec = KNOWN.get(c.name)
        if spec is None:
            out.ignored[f"metric:{c.name}"[:120]] += len(c)
            continue
        found = c.series if c.series is not None else [columns_series(c, a, k)[1] for a, k in zip(c.attrs, c.attr_keys)]
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
    by_id = list(series)
    if packed:
        alone = _pack_alone(b, cols, group.ravel(), keys, by_id, lo)
        if alone.any():
            cols = cols.take(~alone)
            code = code[~alone]
            keys, group = np.unique(code, return_inverse=True)
    sketches = merge_groups(group.ravel().astype(np.int64), keys.size, cols)
    for k, sk in zip(keys.tolist(), sketches):
        model, version, role, name, slot, etype = by_id[k >> 32]
        ws = WindowStats()
        b.parts[WindowKey(model, version, role, name, b.base, lo + (k & 0xFFFFFFFF) * b.base)].append(ws)
        if sk is None:
            continue
        ws.sketches[slot] = sk
        if role == MODEL and slot == "duration":
            _count_calls(ws, {} if etype is None else {"error.type": etype}, sk.count)


def _pack_alone(
    b: _Builder, cols: SketchColumns, group: np.ndarray, keys: np.ndarray, by_id: list[Any], lo: int
) -> np.ndarray:
    """Points alone in their group, of a feature's or an output's series, with a count and
    finite numbers, packed straight into stored rows (``b.packed``): the sketch
    :func:`merge_groups` would give such a point is the point with zero buckets at the ends
    trimmed and ``max_size`` the default or its bucket span if wider. Returns which points
    were taken."""
    n = cols.count.size
    # per series, in C-level maps (one series per point in the exporter pattern): its role,
    # its slot, whether it may be packed and its slot's stored bytes
    slots = list(map(_SLOT_OF, by_id))
    slot_bytes = {s: _slot_bytes(s) for s in set(slots)}
    slot_ok = {s: len(v) < 256 for s, v in slot_bytes.items()}
    series_ok = np.array(list(map(MODEL.__ne__, map(_ROLE_OF, by_id))), bool) & np.array(
        list(map(slot_ok.__getitem__, slots)), bool
    )
    alone = (
        (np.bincount(group, minlength=keys.size)[group] == 1)
        & series_ok[cols.attr_index]
        & (cols.count > 0)
        & np.isfinite(cols.sum)
        & np.isfinite(cols.min)
        & np.isfinite(cols.max)
        & (cols.scale >= -128)
        & (cols.scale < 128)
    )
    idx = np.flatnonzero(alone)
    if not idx.size:
        return alone
    # runs: each point's positive then negative buckets, as laid out in cols.counts
    r_len = np.empty(2 * n, np.int64)
    r_len[0::2], r_len[1::2] = cols.pos_len, cols.neg_len
    r_end = np.cumsum(r_len)
    r_start = r_end - r_len
    offs = np.empty(2 * n, np.int64)
    offs[0::2], offs[1::2] = cols.pos_offset, cols.neg_offset
    runs = np.empty(2 * idx.size, np.int64)
    runs[0::2], runs[1::2] = 2 * idx, 2 * idx + 1
    if trimmed_runs(cols.counts, r_start[runs], r_end[runs]):  # nothing to trim (what SDKs send)
        t_len = r_len[runs]
        t_off = np.where(t_len > 0, offs[runs], 0)
        counts = cols.counts if idx.size == n else _gather_runs(cols.counts, r_start[runs], t_len)
    else:
        t_off, t_len, counts = _trim_runs(cols.counts, r_start, r_end, offs, runs)
    return _pack_taken(b, cols, group, keys, by_id, lo, alone, idx, t_off, t_len, counts, slots, slot_bytes)


def _trim_runs(
    counts_in: np.ndarray, r_start: np.ndarray, r_end: np.ndarray, offs: np.ndarray, runs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``runs`` taken with zero buckets at their ends trimmed: each run's offset, its
    length and all runs' counts one after the other."""
    nz_at = np.flatnonzero(counts_in)
    first = np.searchsorted(nz_at, r_start)
    r_nz = np.searchsorted(nz_at, r_end) - first
    has = r_nz[runs] > 0
    lo_at = np.where(has, nz_at[np.minimum(first[runs], max(nz_at.size - 1, 0))], 0) if nz_at.size else runs * 0
    hi_at = np.where(has, nz_at[np.maximum(first[runs] + r_nz[runs] - 1, 0)], -1) if nz_at.size else runs * 0 - 1
    t_len = np.where(has, hi_at - lo_at + 1, 0)
    t_off = np.where(has, offs[runs] + lo_at - r_start[runs], 0)
    return t_off, t_len, _gather_runs(counts_in, lo_at, t_len)


def _gather_runs(counts: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """``counts[starts[i] : starts[i] + lens[i]]`` of every run, one after the other, in one
    gather."""
    ends = np.cumsum(lens)
    total = int(ends[-1]) if ends.size else 0
    if not total:
        return counts[:0]
    return counts[np.repeat(starts - (ends - lens), lens) + np.arange(total)]


def _pack_taken(
    b: _Builder,
    cols: SketchColumns,
    group: np.ndarray,
    keys: np.ndarray,
    by_id: list[Any],
    lo: int,
    alone: np.ndarray,
    idx: np.ndarray,
    t_off: np.ndarray,
    t_len: np.ndarray,
    counts: np.ndarray,
    slots: list[Any],
    slot_bytes: dict[Any, bytes],
) -> np.ndarray:
    """Pack the points ``idx`` (their runs trimmed to ``t_off``, ``t_len``, ``counts``) into
    ``b.packed``; returns ``alone``."""
    pos_len, neg_len = t_len[0::2], t_len[1::2]
    scalars = {
        "scale": cols.scale[idx],
        "zero_count": cols.zero_count[idx],
        "count": cols.count[idx],
        "sum": cols.sum[idx],
        "min": cols.min[idx],
        "max": cols.max[idx],
        "max_size": np.maximum(np.maximum(pos_len, neg_len), DEFAULT_MAX_SIZE),
    }
    sid = cols.attr_index[idx].tolist()
    names = list(map(list(map(slot_bytes.__getitem__, slots)).__getitem__, sid))
    rows = pack_columns(scalars, t_off[0::2], pos_len, t_off[1::2], neg_len, counts, names)
    base = b.base
    starts = (lo + (keys[group[idx]] & 0xFFFFFFFF) * base).tolist()
    # each point's key, series part (model, version, role, name, size) + (start,), built in C
    heads = list(map(operator.add, map(_IDENT_OF, by_id), itertools.repeat((base,))))
    tuples = map(operator.add, map(heads.__getitem__, sid), zip(starts))
    _place_packed(b, list(map(tuple.__new__, itertools.repeat(WindowKey), tuples)), rows)
    return alone


def _place_packed(b: _Builder, keys: list[WindowKey], rows: list[bytes]) -> None:
    """Put packed rows in the builder under their keys, in order: ``b.packed``, or, where two
    points share a window (e.g. two slots of one series) or the window has other parts
    already, merged the plain way (``b.parts``). Where no key is taken yet and none repeats
    (the exporter pattern), one ``dict.update`` places them all."""
    got = b.packed
    if not b.parts and got.keys().isdisjoint(keys):
        before = len(got)
        got.update(zip(keys, rows))
        if len(got) == before + len(keys):
            return
        for key in keys:  # a key repeats: undone, then placed one by one
            got.pop(key, None)
    _place_each(b, keys, rows)


def _place_each(b: _Builder, keys: list[WindowKey], rows: list[bytes]) -> None:
    """:func:`_place_packed` one key at a time (what it does where keys collide)."""
    got = b.packed
    for key, row in zip(keys, rows):
        if key in got:  # two series (e.g. slots) share the window: merged the plain way
            b.parts[key].append(decode_window(got.pop(key)))
            b.parts[key].append(decode_window(row))
        elif key in b.parts:
            b.parts[key].append(decode_window(row))
        else:
            got[key] = row


_ROLE_OF = operator.itemgetter(2)
_SLOT_OF = operator.itemgetter(4)
_IDENT_OF = operator.itemgetter(0, 1, 2, 3)


_SLOTS: dict[str, bytes] = {}


def _slot_bytes(slot: Any) -> bytes:
    got = _SLOTS.get(slot)
    if got is None:
        got = _SLOTS[slot] = str(slot).encode()
    return got


def _add_metric(b: _Builder, p: MetricPoint, out: Aggregated) -> None:
    spec = KNOWN.get(p.name)
    if spec is None:
        out.ignored[f"metric:{p.name}"[:120]] += 1
        return
    role, series_attr, slot, label_attr = spec
    ident = identity(p.attributes, p.resource)
    if ident is None or metric_problem(p):
        return  # screened out (and reported) before it reached the writer
    series = "" if series_attr is None else str(p.attributes[series_attr])
    ws = b.part(ident[0], ident[1], series_role(role, p.attributes), series, p.time_ns)
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
    if attrs.get("ml.schema.valid") is False:
        ws.add_count("calls", "invalid", n)


def _int_if_whole(v: float) -> float:
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else v


def _add_span(b: _Builder, s: SpanPoint, out: Aggregated) -> None:
    ident = identity(s.attributes, s.resource)
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
    if rec.event_name == OUTCOMES_EVENT:
        out.outcomes.extend(outcome_rows(rec))
        return
    if rec.event_name not in ("ml.prediction", "ml.feedback"):
        out.ignored[f"log:{rec.event_name or '(no event name)'}"[:120]] += 1
        return
    ident = identity(rec.attributes, rec.resource)
    if ident is None or log_problem(rec):
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
        # The feedback's own attributes (record_feedback(..., region="eu")) are what quality
        # is sliced by.
        extra = {
            k[len("ml.feedback.") :]: v
            for k, v in rec.attributes.items()
            if k.startswith("ml.feedback.") and k != "ml.feedback.actual"
        }
        out.feedback.append(
            Feedback(
                ident[0],
                ident[1],
                str(rid),
                rec.time_ns,
                _json_text(actual) or "",
                json.dumps(extra, sort_keys=True, default=str) if extra else None,
            )
        )
