"""The statistics buffers between exports stay bounded whatever the calls carry."""

from __future__ import annotations

import numpy as np

from infersight.feature_stats import FeatureStats
from infersight.payload import normalize_inputs
from infersight.redaction import Redactor


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


def _everything(acc: FeatureStats) -> dict:
    """Every point of every metric the accumulator exports, as plain data."""
    out = {}
    for m in acc.drain(0, 1):
        for p in m.data.data_points:
            key = (m.name, tuple(sorted(p.attributes.items())))
            if hasattr(p, "positive"):
                out[key] = (
                    p.count,
                    p.sum,
                    p.min,
                    p.max,
                    p.scale,
                    p.zero_count,
                    p.positive.offset,
                    tuple(p.positive.bucket_counts),
                )
            elif hasattr(p, "bucket_counts"):
                out[key] = (p.count, p.sum, tuple(p.bucket_counts))
            else:
                out[key] = p.value
    return out


def test_a_batch_recorded_under_one_lock_exports_what_the_three_records_export():
    """record_batch (inputs, float answers and the call together) is the same statistics as
    record_columns, record_outputs and record_call one after another, lists of dicts included
    (with text and ``None`` values, with a redacted name); calls it does not take (rows whose
    names vary, labels, NaN answers) it says so and records nothing."""
    from infersight.payload import normalize_outputs

    rng = np.random.default_rng(3)
    calls = [
        (
            normalize_inputs(rng.normal(size=(10, 4)), ["a", "b", "c", "d"]),
            normalize_outputs(rng.normal(size=10)),
            None,
        ),
        (
            normalize_inputs({"a": rng.normal(size=6), "b": np.arange(6)}),
            normalize_outputs(rng.normal(size=(6, 1))),
            None,
        ),
        (normalize_inputs(rng.normal(size=(3, 4)), ["a", "b", "c", "d"]), None, "ValueError"),
        (normalize_inputs([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]), normalize_outputs(np.ones(2)), None),
        (normalize_inputs([{"a": 1, "plan": "x"}, {"a": 3, "plan": None}]), normalize_outputs(np.ones(2)), None),
        (normalize_inputs([{"a": 1.0, "password": 2.0}, {"a": 3.0, "password": 4.0}]), None, "KeyError"),
        (normalize_inputs([{"a": 1.0}, {"a": 3.0, "b": 4.0}]), normalize_outputs(np.ones(2)), None),
        (
            normalize_inputs(rng.normal(size=(2, 4)), ["a", "b", "c", "d"]),
            normalize_outputs(np.array(["x", "y"])),
            None,
        ),
        (
            normalize_inputs(rng.normal(size=(2, 4)), ["a", "b", "c", "d"]),
            normalize_outputs(np.array([np.nan, 1.0])),
            None,
        ),
    ]
    together, apart = FeatureStats(), FeatureStats()
    redactor = Redactor(["password"])
    taken = []
    for norm, outs, error in calls:
        took = together.record_batch(("m", "1"), norm, outs, 0.002, error, redactor)
        taken.append(took)
        if not took:
            together.record_columns(("m", "1"), norm, redactor)
            if outs is not None:
                together.record_outputs(("m", "1"), outs)
            together.record_call(("m", "1"), 0.002, norm.n_rows, error)
        apart.record_columns(("m", "1"), norm, redactor)
        if outs is not None:
            apart.record_outputs(("m", "1"), outs)
        apart.record_call(("m", "1"), 0.002, norm.n_rows, error)
    assert taken == [True, True, True, True, True, True, False, False, False]
    want = _everything(apart)
    assert any(k[0] == "ml.feature.value" for k in want) and any(k[0] == "ml.prediction.value" for k in want)
    assert _everything(together) == want
