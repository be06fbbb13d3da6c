"""Cumulative → delta, one stream at a time (windows add deltas; producers may send totals).

The state of every cumulative stream (its last point) is kept in memory and persisted by the
store in the same transaction as the windows its deltas went into, so a restart neither loses
nor double-counts (:class:`CumulativeToDelta`).

Example:
    >>> c = CumulativeToDelta()
    >>> p = MetricPoint("n", "sum", {}, {}, 1, 10, "cumulative", True, 4.0)
    >>> [d.value for d in c.convert([p], {})]
    [4.0]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from infersight.processor.ingest.points import MetricPoint, bucket_extent
from infersight.stats.sketch import Buckets, ExpHistogram
from infersight.stats.windows import ExplicitHistogram

__all__ = ["CumulativeToDelta", "stream_key", "subtract_sketch"]


@dataclass
class _StreamState:
    start_ns: int
    time_ns: int
    value: float | None = None
    sketch: ExpHistogram | None = None
    histogram: ExplicitHistogram | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "start_ns": self.start_ns,
                "time_ns": self.time_ns,
                "value": self.value,
                "sketch": self.sketch.to_dict() if self.sketch else None,
                "histogram": self.histogram.to_dict() if self.histogram else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _StreamState:
        d = json.loads(text)
        return cls(
            d["start_ns"],
            d["time_ns"],
            d.get("value"),
            ExpHistogram.from_dict(d["sketch"]) if d.get("sketch") else None,
            ExplicitHistogram.from_dict(d["histogram"]) if d.get("histogram") else None,
        )


def stream_key(p: MetricPoint) -> str:
    """Identity of a cumulative stream: metric name and kind, resource and point attributes."""
    return json.dumps([p.name, p.kind, p.resource, p.attributes], sort_keys=True, separators=(",", ":"), default=str)


class CumulativeToDelta:
    """Turns cumulative points into deltas, one stream at a time.

    A stream restarts (its counters reset) when its start time changes or its value goes down;
    the new cumulative value is then the delta. A stream's first point counts in full when it
    has a start time (everything since that start is new to us) and is only a baseline when it
    has none. Changes are *staged* per batch and kept (:meth:`commit`) only once the batch is
    stored, so a failed write cannot skip data; storage persists the state in the same
    transaction, so a restart neither loses nor double-counts.

    >>> c = CumulativeToDelta()
    >>> p = lambda v, t: MetricPoint("n", "sum", {}, {}, 1, t, "cumulative", True, float(v))
    >>> staged = {}
    >>> [d.value for d in c.convert([p(5, 10), p(7, 20), p(2, 30)], staged)]
    [5.0, 2.0, 2.0]
    """

    def __init__(self) -> None:
        self.state: dict[str, _StreamState] = {}

    def load(self, rows: Iterable[tuple[str, str]]) -> None:
        for key, text in rows:
            self.state[key] = _StreamState.from_json(text)

    def commit(self, staged: Mapping[str, _StreamState]) -> None:
        self.state.update(staged)

    def convert(self, points: Sequence[MetricPoint], staged: dict[str, _StreamState]) -> list[MetricPoint]:
        """Deltas for ``points`` (delta points pass through; gauges too)."""
        out: list[MetricPoint] = []
        for p in points:
            if p.temporality != "cumulative" or p.kind == "gauge":
                out.append(p)
                continue
            key = stream_key(p)
            prev = staged.get(key) or self.state.get(key)
            if prev is not None and p.start_ns == prev.start_ns and p.time_ns <= prev.time_ns:
                continue  # a repeat or out-of-order point of a stream we already counted
            delta = self._delta(p, prev)
            staged[key] = _StreamState(p.start_ns, p.time_ns, p.value, p.sketch, p.histogram)
            if delta is not None:
                out.append(delta)
        return out

    @staticmethod
    def _delta(p: MetricPoint, prev: _StreamState | None) -> MetricPoint | None:
        fresh = prev is None or p.start_ns != prev.start_ns
        if prev is None and not p.start_ns:
            return None  # baseline only: we cannot know what came before
        d = MetricPoint(
            p.name,
            p.kind,
            p.resource,
            p.attributes,
            p.start_ns if fresh or prev is None else prev.time_ns,
            p.time_ns,
            "delta",
            p.monotonic,
            unit=p.unit,
        )
        if p.kind == "sum":
            assert p.value is not None
            if fresh or prev is None or prev.value is None:
                d.value = p.value
            else:
                d.value = p.value - prev.value
                if p.monotonic and d.value < 0:
                    d.value = p.value  # counter reset without a new start time
            return d
        if p.kind == "exponential_histogram":
            assert p.sketch is not None
            diff = None if fresh or prev is None or prev.sketch is None else subtract_sketch(p.sketch, prev.sketch)
            d.sketch = p.sketch if diff is None else diff
            return d
        assert p.histogram is not None
        h = p.histogram
        if fresh or prev is None or prev.histogram is None or prev.histogram.bounds != h.bounds:
            d.histogram = h
            return d
        counts = h.counts - prev.histogram.counts
        if (counts < 0).any():
            d.histogram = h
            return d
        d.histogram = ExplicitHistogram(h.bounds, counts, int(counts.sum()), h.sum - prev.histogram.sum)
        return d


def subtract_sketch(cur: ExpHistogram, prev: ExpHistogram) -> ExpHistogram | None:
    """``cur - prev`` for two cumulative sketches of one stream, or ``None`` if ``prev`` is not
    contained in ``cur`` (a reset). The delta's min/max are exact when the extreme moved, and
    otherwise bounded by its outermost non-empty buckets."""
    if cur.count < prev.count:
        return None
    scale = min(cur.scale, prev.scale)
    a = cur.downscale(cur.scale - scale)
    b = prev.downscale(prev.scale - scale)
    out = ExpHistogram(
        scale=scale,
        zero_count=a.zero_count - b.zero_count,
        count=cur.count - prev.count,
        sum=cur.sum - prev.sum,
        max_size=cur.max_size,
    )
    if out.zero_count < 0:
        return None
    for sign in ("positive", "negative"):
        diff = _sub_buckets(getattr(a, sign), getattr(b, sign))
        if diff is None:
            return None
        setattr(out, sign, diff)
    if out.count == 0:
        return ExpHistogram(max_size=cur.max_size)
    lo, hi = bucket_extent(out)
    out.min = cur.min if cur.min < prev.min else max(lo, cur.min)
    out.max = cur.max if cur.max > prev.max else min(hi, cur.max)
    return out


def _sub_buckets(a: Buckets, b: Buckets) -> Buckets | None:
    if b.empty:
        return Buckets(a.offset, a.counts.copy())
    if a.empty or b.offset < a.offset or b.last > a.last:
        return None if int(b.counts.sum()) else Buckets(a.offset, a.counts.copy())
    counts = a.counts.copy()
    counts[b.offset - a.offset : b.offset - a.offset + b.counts.size] -= b.counts
    if (counts < 0).any():
        return None
    return Buckets(a.offset, counts).trimmed()
