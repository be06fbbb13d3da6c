"""Good and total events of an objective over a time range, read from the processor's store.

* ``availability``: calls (the ``ml.inference.duration`` histogram's count) and calls with an
  ``error.type``: good = calls − errors.
* ``latency``: calls answered within the threshold, read from the same histograms. A bucket
  wholly under the threshold counts in full; the one bucket the threshold falls inside is
  interpolated linearly, so the SLI's error is at most that bucket's share of the calls, and
  zero when the threshold is one of the bucket bounds (the SDK's bounds are
  :data:`~infersight.feature_stats.DURATION_BOUNDS`; exponential histograms from other
  producers have buckets ~0.1% wide at their usual scales). Calls above the last explicit
  bound cannot be placed and count as bad unless the histogram's ``max`` is under the
  threshold. See docs/slo.md for the bound.
* ``data_quality``: calls whose inputs failed the schema (the SDK marks such a call's duration
  with ``ml.schema.valid=false``): good = calls − invalid calls.
* ``model_quality``: labelled predictions that were right, summed from the quality
  evaluator's per-window tallies (``quality_window`` records) of the model's smallest
  evaluation window; labels arrive late, so recent windows count the labels that have come.

Example:
    >>> from infersight.stats.windows import ExplicitHistogram, WindowStats
    >>> import numpy as np
    >>> h = ExplicitHistogram((0.1, 0.5, 1.0), np.array([50, 30, 15, 5]), 100, 30.0)
    >>> latency_good(WindowStats(histograms={"duration": h}), 0.5), latency_good(WindowStats(histograms={"duration": h}), 0.75)
    (80.0, 87.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from infersight.processor.slo.settings import Objective
from infersight.processor.storage.base import MODEL
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats

__all__ = ["ModelCounts", "latency_good", "call_counts", "QUALITY_RECORDS"]

QUALITY_RECORDS = "quality_window"  # the quality evaluator's per-window tallies


def _explicit_good(h: ExplicitHistogram, threshold: float) -> float:
    bounds = np.asarray(h.bounds, dtype=np.float64)
    counts = np.asarray(h.counts, dtype=np.float64)
    k = int(np.searchsorted(bounds, threshold, side="left"))  # bucket k holds (bounds[k-1], bounds[k]]
    good = float(counts[:k].sum())
    if k < bounds.size:
        if bounds[k] == threshold:
            return good + float(counts[k])
        lo = bounds[k - 1] if k > 0 else (h.min if math.isfinite(h.min) else 0.0)
        lo = min(lo, threshold)
        span = bounds[k] - lo
        share = (threshold - lo) / span if span > 0 else 1.0
        return good + float(counts[k]) * float(min(max(share, 0.0), 1.0))
    # the threshold is above every bound: the overflow bucket is known good only through max
    if math.isfinite(h.max) and h.max <= threshold:
        return good + float(counts[k])
    return good


def _sketch_good(s: ExpHistogram, threshold: float) -> float:
    if not s.count:
        return 0.0
    if math.isfinite(s.max) and s.max <= threshold:
        return float(s.count)
    good = float(s.negative.counts.sum()) + float(s.zero_count)
    if threshold <= 0 or s.positive.empty:
        return good if threshold >= 0 else 0.0
    idx = np.arange(s.positive.offset, s.positive.last + 1)
    lo, hi = s.bucket_bounds(idx)
    counts = s.positive.counts.astype(np.float64)
    whole = hi <= threshold
    good += float(counts[whole].sum())
    inside = (lo < threshold) & (hi > threshold)
    if inside.any():
        share = (threshold - lo[inside]) / (hi[inside] - lo[inside])
        good += float((counts[inside] * share).sum())
    return good


def latency_good(ws: WindowStats, threshold: float) -> float:
    """Calls in ``ws`` answered within ``threshold`` seconds (see the module docstring)."""
    good = 0.0
    for name, h in ws.histograms.items():
        if name == "duration" or name.startswith("duration@"):
            good += _explicit_good(h, threshold)
    s = ws.sketches.get("duration")
    if s is not None:
        good += _sketch_good(s, threshold)
    return good


def call_counts(ws: WindowStats) -> tuple[float, float, float]:
    """``(calls, errors, invalid)`` of a model window."""
    calls = ws.counters.get("calls", {})
    return float(calls.get("total", 0)), float(calls.get("error", 0)), float(calls.get("invalid", 0))


def _good_of(o: Objective, ws: WindowStats) -> tuple[float, float]:
    total, errors, invalid = call_counts(ws)
    if o.kind == "availability":
        return total - errors, total
    if o.kind == "data_quality":
        return total - invalid, total
    if o.kind == "latency":
        assert o.threshold is not None
        return min(latency_good(ws, o.threshold), total), total
    raise ValueError(f"not a call-based objective kind: {o.kind!r}")


class ModelCounts:
    """The counts of one model's objectives at one evaluation instant, reading each time range
    from the store once for every objective and version of the model."""

    def __init__(self, storage: Any, model: str, quality_size: int | None = None) -> None:
        self.storage, self.model, self.quality_size = storage, model, quality_size
        self._calls: dict[tuple[int, int], Mapping[str, WindowStats]] = {}
        self._quality: dict[tuple[int, int], dict[str, tuple[float, float]]] = {}

    def versions(self, start: float, end: float) -> list[str]:
        """Versions with calls in ``[start, end)``."""
        return sorted(v for v, ws in self._model_windows(start, end).items() if call_counts(ws)[0] > 0)

    def quality_versions(self, start: float, end: float) -> list[str]:
        return sorted(v for v in self._quality_tallies(start, end) if v)

    def counts(self, o: Objective, version: str, start: float, end: float) -> tuple[float, float]:
        """``(good, total)`` of objective ``o`` for ``version`` (``""``: all) in ``[start, end)``."""
        if o.kind == "model_quality":
            return self._quality_tallies(start, end).get(version, (0.0, 0.0))
        by_version = self._model_windows(start, end)
        if version:
            ws = by_version.get(version)
            return (0.0, 0.0) if ws is None else _good_of(o, ws)
        good = total = 0.0
        for ws in by_version.values():
            g, t = _good_of(o, ws)
            good, total = good + g, total + t
        return good, total

    def _model_windows(self, start: float, end: float) -> Mapping[str, WindowStats]:
        key = (int(start), int(end))
        got = self._calls.get(key)
        if got is None:
            rows = self.storage.query_model(self.model, key[0], key[1], roles=[MODEL])
            got = self._calls[key] = {v: ws for (role, name, v), ws in rows.items() if role == MODEL and name == ""}
        return got

    def _quality_tallies(self, start: float, end: float) -> dict[str, tuple[float, float]]:
        key = (int(start), int(end))
        got = self._quality.get(key)
        if got is not None:
            return got
        got = {}
        if self.quality_size:
            recs = self.storage.get_records(
                QUALITY_RECORDS, model=self.model, key_prefix=f"{self.model}|", start=key[0], end=key[1]
            )
            for r in recs:
                parts = r.key.split("|")
                if len(parts) < 5 or parts[2] or parts[3] != str(self.quality_size) or not parts[1]:
                    continue  # a slice, another window size, or the all-versions tally (summed below)
                if r.body.get("task") != "classification":
                    continue
                if int(parts[4]) + self.quality_size > key[1]:
                    continue  # a window reaching past the end is not yet whole
                labelled, correct = float(r.body.get("labelled", 0)), float(r.body.get("correct", 0))
                for v in (parts[1], ""):
                    g, t = got.get(v, (0.0, 0.0))
                    got[v] = (g + correct, t + labelled)
        self._quality[key] = got
        return got
