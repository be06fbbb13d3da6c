"""The statistics buffers between exports stay bounded whatever the calls carry."""

from __future__ import annotations

import numpy as np

from infersight.feature_stats import FeatureStats
from infersight.payload import normalize_inputs


def _points(acc: FeatureStats, metric: str) -> dict:
    out = {}
    for m in acc.drain(0, 1):
        if m.name == metric:
            for p in m.data.data_points:
                out[tuple(sorted(p.attributes.items()))] = p
    return out


def test_calls_without_buffered_rows_ask_for_compaction_and_stay_bounded():
    acc = FeatureStats()
    asked = []
    acc.on_pressure = lambda: asked.append(1)
    for _ in range(20_000):  # e.g. feature_stats off: only the call is recorded
        acc.record_call(("m", "1"), 0.001, 1, None)
    assert len(asked) == 3  # woken at 2048 buffered calls, again after each of the two compactions
    assert len(acc._state.calls[("m", "1")]) < 8192  # and the request path compacted past the hard limit
    (point,) = _points(acc, "ml.inference.duration").values()
    assert point.count == 20_000  # nothing lost by compacting


def test_buffered_batches_ask_for_compaction_and_a_huge_batch_is_sketched_at_once():
    acc = FeatureStats()
    asked = []
    acc.on_pressure = lambda: asked.append(1)
    X = np.random.default_rng(0).normal(size=(1000, 50))
    for _ in range(5):
        acc.record_columns(("m", "1"), normalize_inputs(X))
    assert acc.buffered_rows() == 5000 and asked == []  # 250k values buffered: under 256k
    acc.record_columns(("m", "1"), normalize_inputs(X))
    assert acc.buffered_rows() == 6000 and asked == [1]  # 300k: the exporter thread is woken
    acc.record_columns(("m", "1"), normalize_inputs(np.zeros((30_000, 50))))
    assert acc.buffered_rows() == 6000  # 1.5M values: not buffered
    values = _points(acc, "ml.feature.value")
    counts = {dict(k)["ml.feature.name"]: p.count for k, p in values.items()}
    assert counts == {f"f{i}": 36_000 for i in range(50)}
