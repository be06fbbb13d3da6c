"""One feature model: the SDK's stream and the reference profile classify, sketch and count the
same data the same way, and integer class predictions are class labels on both paths."""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import infersight
from infersight.payload import normalize_inputs, normalize_outputs
from infersight.stats.columns import (
    ABSENT,
    COUNTED_KINDS,
    MISSING_KINDS,
    SKETCHED_KINDS,
    TEXT_MIN_LENGTH,
    infer_kind,
    to_columns,
)
from infersight.stats.drift import DriftPolicy
from infersight.stats.reference import Reference
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import FeatureWindow
from infersight.testing import InMemoryTelemetry

# -- integer class predictions ------------------------------------------------------------


def test_integer_predictions_are_class_labels_in_the_profile_as_in_the_sdk():
    ref = Reference.from_data(
        {"x": np.arange(6.0), "pred": np.array([0, 1, 2, 1, 0, 2]), "y": [0, 1, 2, 2, 0, 1]},
        prediction="pred",
        target="y",
        multivariate=False,
    )
    assert ref.prediction.kind == "categorical" and ref.prediction.categories == {"0": 2, "1": 2, "2": 2}
    assert ref.target.kind == "categorical" and ref.confusion is not None
    # The SDK counts the same outputs as the same labels.
    assert sorted(set(normalize_outputs(np.array([0, 1, 2, 1, 0, 2])).labels["prediction"])) == ["0", "1", "2"]
    # Float predictions stay values on both paths.
    ref = Reference.from_data({"x": np.arange(4.0), "p": [0.1, 0.5, 0.9, 0.3]}, prediction="p", multivariate=False)
    assert ref.prediction.kind == "numeric" and "prediction" in normalize_outputs([0.1, 0.5]).values


def test_outputs_are_labels_by_the_output_rule_whatever_their_length_or_missing_values():
    long = "y" * 90  # a generated answer: a label to the SDK, not a text length
    pred = [3, None, 3, 7, long]
    ref = Reference.from_data({"x": np.arange(5.0), "p": pred}, prediction="p", multivariate=False)
    assert ref.prediction.kind == "categorical" and ref.prediction.numeric is None
    assert ref.prediction.categories == {"3": 2, "7": 1, long: 1} and ref.prediction.missing["null"] == 1
    out = normalize_outputs(np.array(pred, dtype=object))
    assert {lab: out.labels["prediction"].count(lab) for lab in out.labels["prediction"]} == ref.prediction.categories


def test_boolean_predictions_are_the_same_labels_online_and_offline():
    ref = Reference.from_data({"x": np.arange(3.0), "p": [True, False, True]}, prediction="p", multivariate=False)
    assert ref.prediction.categories == {"false": 1, "true": 2}
    assert normalize_outputs([True, False, True]).labels["prediction"] == ["true", "false", "true"]


def test_profile_cli_reads_an_integer_prediction_column_as_classes(tmp_path):
    from infersight.cli import main

    rng = np.random.default_rng(1)
    path = tmp_path / "train.csv"
    rows = ["x,pred"] + [f"{rng.normal():.4f},{c}" for c in rng.integers(0, 10, 2000)]
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "reference.json"
    assert main(["profile", str(path), "--model", "m", "--prediction", "pred", "-o", str(out), "--no-progress"]) == 0
    ref = Reference.load(out)
    assert ref.prediction.kind == "categorical"
    assert sorted(ref.prediction.categories) == [str(c) for c in range(10)]
    assert DriftPolicy().method_for(ref.prediction).name == "chi2+cohen_w"


def test_a_vanished_class_of_ten_is_flagged_in_every_500_row_window_and_null_windows_are_not():
    rng = np.random.default_rng(13)
    train = rng.integers(0, 10, 20_000)
    ref = Reference.from_data({"x": rng.normal(size=train.size), "pred": train}, prediction="pred", multivariate=False)
    policy = DriftPolicy()
    assert ref.prediction.kind == "categorical"

    def flagged(classes: np.ndarray) -> bool:
        # What the SDK sends for these outputs: class label counts.
        labels = normalize_outputs(classes).labels["prediction"]
        window = FeatureWindow("categorical", len(labels), dict.fromkeys(MISSING_KINDS, 0))
        window.categories = {lab: labels.count(lab) for lab in set(labels)}
        return policy.score_feature(ref.prediction, window).drift

    # Class 4 (10% of traffic) is gone. Read as numbers, KS + Wasserstein on ten tied values
    # flagged 6-9% of such windows: a middle class barely moves the mean.
    kept = np.array([c for c in range(10) if c != 4])
    shifted = [flagged(rng.choice(kept, 500)) for _ in range(20)]
    null = [flagged(rng.integers(0, 10, 500)) for _ in range(20)]
    assert sum(shifted) == 20
    assert sum(null) == 0


# -- the value rule -----------------------------------------------------------------------


def test_a_column_kind_is_the_kind_of_its_values_not_a_count_of_distinct_values():
    ids = np.array([f"user-{i}" for i in range(1000)], dtype=object)  # all distinct, short
    assert infer_kind(ids) == "categorical"  # the SDK counts them as categories too
    long = np.array(["w" * TEXT_MIN_LENGTH] * 50, dtype=object)  # all equal, long
    assert infer_kind(long) == "text"
    assert infer_kind(np.array(["1", "2", "3"], dtype=object)) == "categorical"  # strings sent are strings


def test_lists_keep_each_value_as_it_is_given():
    cols, _ = to_columns({"a": [1, "x"], "b": [True, 2], "c": [1.5, None]})
    assert cols["a"].tolist() == [1, "x"] and cols["b"].tolist() == [True, 2] and cols["c"].tolist() == [1.5, None]
    norm = normalize_inputs({"a": [1, "x"], "b": [True, 2], "c": [1.5, None]})
    assert [norm.as_columns()[k].tolist() for k in "abc"] == [[1, "x"], [True, 2], [1.5, None]]


def test_none_in_a_number_column_is_a_null_in_the_profile_as_in_the_sdk():
    ref = Reference.from_data({"a": [1.0, None, math.nan, 2.0, math.inf]}, multivariate=False)
    assert ref.features["a"].missing == {"absent": 0, "null": 1, "nan": 1, "inf": 1}


# -- the property: stream == profile ------------------------------------------------------

_WORDS = ["pro", "free", "team", "a", "b", "zz", "x-1", "é"]
_MISSING = [None, math.nan, math.inf, -math.inf, ABSENT]

_values = {
    "float": st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    "int": st.integers(-1000, 1000),
    "bool": st.booleans(),
    "short": st.sampled_from(_WORDS),
    "long": st.integers(TEXT_MIN_LENGTH, TEXT_MIN_LENGTH + 40).map(lambda n: "t" * n),
}
_values["mixed"] = st.one_of(*_values.values())


@st.composite
def _table(draw: Any, mode: str) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    types = draw(st.lists(st.sampled_from(sorted(_values)), min_size=1, max_size=4))
    missing = st.sampled_from(_MISSING if mode != "columns" else _MISSING[:-1])  # no absent key in a column
    table: list[dict[str, Any]] = [{} for _ in range(n)]
    for j, t in enumerate(types):
        cell = st.one_of(_values[t], missing) if draw(st.booleans()) else _values[t]
        for row in table:
            v = draw(cell)
            if v is not ABSENT:
                row[f"f{j}_{t}"] = v
    return table


def _send(predict: Any, mode: str, table: list[dict[str, Any]], batch: int) -> None:
    if mode == "rows":
        for row in table:
            predict(row)
        return
    for at in range(0, len(table), batch):
        part = table[at : at + batch]
        if mode == "records":
            predict(part)
        else:
            predict({k: [r[k] for r in part] for k in part[0]})


def _stream(telemetry: InMemoryTelemetry, model: str) -> dict[str, dict[str, Any]]:
    """Per feature, what arrived: the sketch, category counts and missing counts."""
    telemetry.flush()
    out: dict[str, dict[str, Any]] = {}

    def feature(p: Any) -> dict[str, Any] | None:
        a = p.attributes
        if a.get("ml.model.name") != model:
            return None
        return out.setdefault(a["ml.feature.name"], {"sketch": ExpHistogram(), "categories": {}, "missing": {}})

    for p in telemetry.points("ml.feature.value"):
        f = feature(p)
        if f is not None:
            sk = ExpHistogram.from_dict(
                {
                    "scale": p.scale,
                    "zero_count": p.zero_count,
                    "positive": {"offset": p.positive.offset, "counts": list(p.positive.bucket_counts)},
                    "negative": {"offset": p.negative.offset, "counts": list(p.negative.bucket_counts)},
                    "count": p.count,
                    "sum": p.sum,
                    "min": p.min,
                    "max": p.max,
                }
            )
            f["sketch"] = ExpHistogram.merge_all([f["sketch"], sk])
    for p in telemetry.points("ml.feature.category"):
        f = feature(p)
        if f is not None:
            key = p.attributes["ml.category.value"]
            f["categories"][key] = f["categories"].get(key, 0) + int(p.value)
    for p in telemetry.points("ml.feature.missing"):
        f = feature(p)
        if f is not None:
            key = p.attributes["ml.missing.kind"]
            f["missing"][key] = f["missing"].get(key, 0) + int(p.value)
    telemetry.clear()
    return out


@pytest.fixture(scope="module")
def telemetry():
    t = InMemoryTelemetry.install(log_output="none", payload_sample_rate=0.0)
    yield t
    infersight.configure(exporter="none", log_output="none")


@pytest.mark.parametrize("mode", ["rows", "records", "columns"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), batch=st.integers(2, 25))
def test_the_stream_and_the_profile_hold_the_same_feature_statistics(telemetry, mode, data, batch):
    """Row by row (dicts), in batches of records (lists of dicts) and of columns (dicts of
    lists): per feature the same sketch, category counts and missing counts as the profile."""
    table = data.draw(_table(mode))
    model = f"m-{uuid.uuid4().hex[:8]}"

    @infersight.monitor(model=model, version="1")
    def predict(x: Any) -> float:
        return 0.0

    _send(predict, mode, table, batch)
    stream = _stream(telemetry, model)
    ref = Reference.from_data(table, model=model, multivariate=False)
    policy = DriftPolicy()
    assert set(stream) <= set(ref.features)
    for name, prof in ref.features.items():
        got = stream.get(name, {"sketch": ExpHistogram(), "categories": {}, "missing": {}})
        want_missing = {k: v for k, v in prof.missing.items() if v}
        assert got["missing"] == want_missing, name
        want_sketch = prof.numeric.sketch if prof.numeric is not None else ExpHistogram()
        assert got["sketch"] == want_sketch, name
        assert got["categories"] == (prof.categories or {}), name
        # The kind the profile gives the column is the part of it the stream carries most of.
        n_sketched, n_counted = got["sketch"].count, sum(got["categories"].values())
        if n_sketched != n_counted:
            assert (prof.kind in SKETCHED_KINDS) == (n_sketched > n_counted), (name, prof.kind)
            assert prof.kind in SKETCHED_KINDS + COUNTED_KINDS
        # Scoring the stream's window against the profile of the same data finds nothing.
        window = FeatureWindow(
            prof.kind,
            len(table),
            {k: got["missing"].get(k, 0) for k in MISSING_KINDS},
            got["sketch"] if prof.numeric is not None else None,
            got["categories"] if prof.categories is not None else None,
        )
        result = policy.score_feature(prof, window)
        assert not result.drift, (name, result)


def test_a_key_missing_from_a_record_breaks_required_or_nothing_never_nullable_or_type():
    from infersight.stats.schema import FeatureSchema, Schema

    optional = Schema({"a": FeatureSchema("a", "numeric", required=False), "b": FeatureSchema("b", "categorical")})
    norm = normalize_inputs([{"a": 1.0, "b": "x"}, {"b": "y"}, {"a": 2.0}])
    report = optional.validate(norm.as_columns(), norm.n_rows)
    assert [(v.feature, v.rule, v.count, v.first_row) for v in report.violations] == [("b", "required", 1, 2)]
    norm = normalize_inputs([{"a": None, "b": "x"}, {"b": "y"}])
    assert [(v.feature, v.rule) for v in optional.validate(norm.as_columns(), 2).violations] == [("a", "nullable")]
