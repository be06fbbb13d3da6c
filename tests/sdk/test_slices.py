"""``@monitor(slices=[...])``: each slice's feature and prediction statistics, labelled
``ml.slice``, beside the model's totals, which do not change; every input shape a predict
function takes is split by row."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest

import infersight
from infersight.slices import MISSING, Slicer


def _by_slice(t: Any, metric: str, model: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(slice, feature or output name) -> count and sum of the exported points."""
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"count": 0, "sum": 0.0})
    for p in t.points(metric):
        a = p.attributes
        if a.get("ml.model.name") != model:
            continue
        name = a.get("ml.feature.name", a.get("ml.output.name"))
        entry = out[(a.get("ml.slice", ""), name)]
        entry["count"] += p.count
        entry["sum"] += p.sum
    return dict(out)


def _categories(t: Any, model: str) -> Counter[tuple[str, str, str]]:
    c: Counter[tuple[str, str, str]] = Counter()
    for p in t.points("ml.feature.category"):
        a = p.attributes
        if a.get("ml.model.name") == model:
            c[(a.get("ml.slice", ""), a["ml.feature.name"], a["ml.category.value"])] += p.value
    return c


ROWS = [
    {"region": "eu", "age": 30.0, "income": 10.0},
    {"region": "us", "age": 40.0, "income": 20.0},
    {"region": "eu", "age": 50.0, "income": None},
    {"region": "apac", "age": 60.0, "income": 40.0},
    {"age": 70.0, "income": 50.0},  # no region: the "(missing)" slice
]


def _expected(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    want: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"count": 0, "sum": 0.0})
    for r in rows:
        key = f"region={r.get('region', MISSING)}"
        for name in ("age", "income"):
            v = r.get(name)
            if v is None:
                continue
            for s in ("", key):
                want[(s, name)]["count"] += 1
                want[(s, name)]["sum"] += v
    return dict(want)


@pytest.mark.parametrize(
    "shape", ["dict rows", "list of dicts", "DataFrame", "dict of columns", "2-D array with names"]
)
def test_each_slice_gets_its_rows_and_the_totals_do_not_change(telemetry: Any, shape: str) -> None:
    model = "sliced-" + shape.replace(" ", "-")

    @infersight.monitor(model=model, slices=["region"])
    def predict(x: Any) -> Any:
        n = 1 if isinstance(x, dict) and not isinstance(x.get("age"), (list, np.ndarray)) else 5
        return 0.5 if n == 1 else np.full(n, 0.5)

    rows = ROWS
    if shape == "dict rows":
        for r in rows:
            predict(r)
    elif shape == "list of dicts":
        predict(rows)
    elif shape == "DataFrame":
        predict(pd.DataFrame(rows))
    elif shape == "dict of columns":
        predict({k: [r.get(k) for r in rows] for k in ("region", "age", "income")})
    else:
        # a numeric matrix: the slice input is a code (1.0 = eu, 2.0 = us)
        rows = [{"region": c, "age": a, "income": 1.0} for c, a in ((1.0, 30.0), (2.0, 40.0), (1.0, 50.0))]

        @infersight.monitor(model=model, features=["region", "age", "income"], slices=["region"])
        def predict_matrix(x: Any) -> Any:
            return np.full(len(x), 0.5)

        predict_matrix(np.array([[r["region"], r["age"], r["income"]] for r in rows]))
    telemetry.flush()
    got = _by_slice(telemetry, "ml.feature.value", model)
    want = _expected(rows)
    if shape == "2-D array with names":
        want = {
            k: v
            for k, v in _by_slice(telemetry, "ml.feature.value", model).items()
            if k[1] == "region"  # the code is numeric: a feature too
        } | {
            ("", "age"): {"count": 3, "sum": 120.0},
            ("region=1.0", "age"): {"count": 2, "sum": 80.0},
            ("region=2.0", "age"): {"count": 1, "sum": 40.0},
            ("", "income"): {"count": 3, "sum": 3.0},
            ("region=1.0", "income"): {"count": 2, "sum": 2.0},
            ("region=2.0", "income"): {"count": 1, "sum": 1.0},
        }
    assert got == want
    preds = _by_slice(telemetry, "ml.prediction.value", model)
    slices = Counter(f"region={r.get('region', MISSING)}" for r in rows)
    assert preds[("", "prediction")]["count"] == len(rows)
    assert {k[0]: v["count"] for k, v in preds.items() if k[0]} == dict(slices)
    if shape != "2-D array with names":
        cats = _categories(telemetry, model)
        assert cats[("region=eu", "region", "eu")] == 2 and cats[("", "region", "eu")] == 2
        assert not [k for k in cats if k[0] == "region=eu" and k[2] != "eu"]
    # calls are not sliced: latency SLOs read the totals only
    assert all("ml.slice" not in p.attributes for p in telemetry.points("ml.inference.duration"))


def test_slices_are_bounded_per_model_and_the_rest_is_other(telemetry: Any) -> None:
    @infersight.monitor(model="many-slices", slices=Slicer(["user"], max_slices=3))
    def predict(row: dict[str, Any]) -> float:
        return 1.0

    for i in range(10):
        predict({"user": f"u{i}", "x": float(i)})
    telemetry.flush()
    got = _by_slice(telemetry, "ml.feature.value", "many-slices")
    assert sorted(k[0] for k in got if k[1] == "x") == ["", "user=__other__", "user=u0", "user=u1", "user=u2"]
    assert got[("user=__other__", "x")]["count"] == 7 and got[("", "x")]["count"] == 10


def test_bad_slices_are_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"slices=\[\]: give the names of inputs"):
        infersight.monitor(slices=[])
    with pytest.raises(ValueError, match="max_slices=0"):
        Slicer(["region"], max_slices=0)


def test_a_failing_predict_still_slices_its_inputs_and_raises_as_it_would(telemetry: Any) -> None:
    @infersight.monitor(model="sliced-error", slices=["region"])
    def predict(row: dict[str, Any]) -> float:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        predict({"region": "eu", "x": 1.0})
    telemetry.flush()
    got = _by_slice(telemetry, "ml.feature.value", "sliced-error")
    assert got[("region=eu", "x")]["count"] == 1 and got[("", "x")]["count"] == 1
    assert not _by_slice(telemetry, "ml.prediction.value", "sliced-error")
