"""Window summaries merge exactly: the merge of two equals the summary of the union."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.stats.drift import DriftPolicy
from infersight.stats.reference import Reference
from infersight.stats.windows import FeatureWindow, WindowStats, WindowSummary, cumulative, sliding

KINDS = {"x": "numeric", "c": "categorical"}

numbers = st.lists(
    st.one_of(st.floats(-1e12, 1e12, allow_nan=False), st.just(float("nan")), st.just(float("inf")), st.just(0.0)),
    min_size=1,
    max_size=60,
)


def summary(xs, cs):
    return WindowSummary.from_columns({"x": np.array(xs, float), "c": np.array(cs, dtype=object)}, kinds=KINDS)


@settings(max_examples=150, deadline=None)
@given(numbers, numbers, st.data())
def test_merge_equals_summary_of_union(a, b, data):
    ca = data.draw(st.lists(st.sampled_from(["p", "q", None]), min_size=len(a), max_size=len(a)))
    cb = data.draw(st.lists(st.sampled_from(["q", "r", None]), min_size=len(b), max_size=len(b)))
    merged = summary(a, ca).merge(summary(b, cb))
    union = summary(a + b, ca + cb)
    assert merged.rows == union.rows
    for k in KINDS:
        fm, fu = merged.features[k], union.features[k]
        assert fm.missing == fu.missing and fm.categories == fu.categories
        assert fm.sketch == fu.sketch  # includes exponential-histogram downscaling


def test_wide_ranges_force_downscaling_and_still_merge_exactly():
    a = summary([1e-9, 2e-9], ["p", "p"])
    b = summary([1e9, 3e9], ["q", "q"])
    m = a.merge(b)
    assert m.features["x"].sketch.scale < a.features["x"].sketch.scale
    assert m.features["x"].sketch == summary([1e-9, 2e-9, 1e9, 3e9], list("ppqq")).features["x"].sketch


def test_sliding_and_cumulative_views_and_json_roundtrip():
    ws = [summary([float(i)] * 10, ["p"] * 10) for i in range(5)]
    for i, w in enumerate(ws):
        w.start, w.end = i, i + 1
    slid = list(sliding(ws, 2))
    assert [(s.start, s.end, s.rows) for s in slid] == [(0, 2, 20), (1, 3, 20), (2, 4, 20), (3, 5, 20)]
    cum = list(cumulative(ws))
    assert [c.rows for c in cum] == [10, 20, 30, 40, 50]
    back = WindowSummary.from_dict(cum[-1].to_dict())
    assert back.features["x"].sketch == cum[-1].features["x"].sketch and back.features["c"].categories == {"p": 50}


def test_past_window_as_reference_for_seasonality():
    rng = np.random.default_rng(0)
    last_week = WindowSummary.from_columns({"x": rng.normal(5, 1, 8000)}, kinds={"x": "numeric"})
    ref = last_week.as_reference(model="m")
    same = WindowSummary.from_columns({"x": rng.normal(5, 1, 4000)}, kinds={"x": "numeric"})
    moved = WindowSummary.from_columns({"x": rng.normal(6, 1, 4000)}, kinds={"x": "numeric"})
    assert not DriftPolicy().evaluate(ref, same)["x"].drift
    assert DriftPolicy().evaluate(ref, moved)["x"].drift
    assert isinstance(ref, Reference)


def test_a_feature_window_stored_and_read_back_is_the_same_window():
    """One window model: the processor stores a feature window as ``WindowStats`` and reads it
    back for scoring; storing commutes with merging, so stored windows merge like the engine's."""
    rng = np.random.default_rng(8)
    parts = []
    for i in range(4):
        xs = list(rng.normal(i, 1, 300)) + [np.nan] * i + [np.inf] * (i % 2)
        cs = list(rng.choice(["a", "b", "c"], 300 - i)) + [None] * (2 * i + i % 2)
        parts.append(summary(xs, cs))
    for s in parts:
        for name, fw in s.features.items():
            back = FeatureWindow.from_stats(fw.to_stats(), fw.kind)
            assert (back.kind, back.rows, back.missing, back.sketch, back.categories) == (
                fw.kind,
                fw.rows,
                fw.missing,
                fw.sketch,
                fw.categories,
            ), name
    merged = WindowSummary.merge_all(parts)
    stored = {name: WindowStats.merge_all(s.features[name].to_stats() for s in parts) for name in merged.features}
    read = WindowSummary.from_stats(stored, KINDS)
    assert read.rows == merged.rows
    for name, fw in merged.features.items():
        got = read.features[name]
        assert (got.kind, got.rows, got.missing, got.sketch, got.categories) == (
            fw.kind,
            fw.rows,
            fw.missing,
            fw.sketch,
            fw.categories,
        )
    # Without the reference's kind, counts and no sketch read as categorical, a sketch as numeric.
    assert FeatureWindow.from_stats(stored["c"]).kind == "categorical"
    assert FeatureWindow.from_stats(stored["x"]).kind == "numeric"
