"""Every input shape a predict function takes exports the same statistics as the same rows sent
one dict at a time, read back from a real loopback OTLP receiver; payload logs keep integers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

import infersight
from support.otlp_sink import OtlpSink, attrs


@pytest.fixture(scope="module")
def sink():
    with OtlpSink() as s:
        yield s


@pytest.fixture
def configured(sink):
    sink.clear()
    infersight.configure(
        endpoint=sink.grpc_endpoint,
        protocol="grpc",
        log_output="none",
        payload_sample_rate=1.0,
        metric_export_interval=3600,
    )
    return sink


def _rows(n: int, seed: int, *, objects: bool = True, nulls: bool = True) -> list[dict[str, Any]]:
    """Rows with a float feature (with NaN and Inf), an int, and, unless ``objects`` is off, a
    category, a bool and a text feature; with ``nulls``, some None values and absent keys."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "income": float(rng.lognormal(3, 1)),
            "tenure": int(rng.integers(0, 40)),
            "score": float(rng.normal()),
        }
        if objects:
            row["plan"] = ["free", "pro", "team"][i % 3]
            row["vip"] = bool(i % 2)
            row["note"] = "x" * (60 + i)  # 64 characters and longer are text, sketched by length
        rows.append(row)
    rows[1]["income"] = float("nan")
    rows[2]["score"] = float("inf")
    rows[3]["score"] = 0.0
    rows[4]["score"] = -2.5
    if nulls and objects:
        rows[5]["plan"] = None
        del rows[6]["vip"]
    return rows


def _exported(sink: OtlpSink, model: str) -> dict[str, Any]:
    """What reached the receiver for ``model``: each numeric sketch in full, category and
    missing counts, prediction sketches."""
    out: dict[str, Any] = {}
    for metric in ("ml.feature.value", "ml.prediction.value"):
        for _, _, p in sink.metric_points(metric):
            a = attrs(p.attributes)
            if a.get("ml.model.name") != model:
                continue
            key = (metric, a.get("ml.feature.name") or a.get("ml.output.name"))
            assert key not in out  # one point per series and export
            out[key] = (
                p.count,
                p.sum,
                p.scale,
                p.zero_count,
                p.min,
                p.max,
                p.positive.offset,
                list(p.positive.bucket_counts),
                p.negative.offset,
                list(p.negative.bucket_counts),
            )
    for metric in ("ml.feature.category", "ml.feature.missing"):
        for _, _, p in sink.metric_points(metric):
            a = attrs(p.attributes)
            if a.get("ml.model.name") != model:
                continue
            key = (metric, a["ml.feature.name"], a.get("ml.category.value") or a.get("ml.missing.kind"))
            out[key] = out.get(key, 0) + p.as_int
    return out


def _send_as_dicts(model: str, rows: list[dict[str, Any]]) -> None:
    @infersight.monitor(model=model, version="1")
    def predict(row: dict[str, Any]) -> float:
        return 1.5

    for row in rows:
        predict(row)


def _send(model: str, batches: list[Any], features: list[str] | None = None) -> None:
    @infersight.monitor(model=model, version="1", features=features)
    def predict(x: Any) -> Any:
        if isinstance(x, dict):
            n = len(next(iter(x.values())))
        else:
            n = len(x) if isinstance(x, (list, pd.DataFrame)) or (isinstance(x, np.ndarray) and x.ndim == 2) else 1
        return np.full(n, 1.5)  # what model.predict returns: one number a row

    for b in batches:
        predict(b)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


class Applicant(pydantic.BaseModel):
    income: float
    tenure: int
    score: float
    plan: str | None = None
    vip: bool = False
    note: str = ""


def _numeric_matrix(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r["income"], r["tenure"], r["score"]] for r in rows])


NUMERIC = ["income", "tenure", "score"]

# shape name -> (make the inputs from rows, rows use objects, rows have nulls, feature names)
SHAPES: dict[str, tuple[Callable[[list[dict[str, Any]]], list[Any]], bool, bool, list[str] | None]] = {
    "list of dicts": (lambda rows: [rows[:7], rows[7:]], True, True, None),
    "list holding one dict": (lambda rows: [[r] for r in rows], True, True, None),
    "DataFrame": (lambda rows: [_frame(rows[:9]), _frame(rows[9:])], True, False, None),
    "one-row DataFrames": (lambda rows: [_frame([r]) for r in rows], True, False, None),
    "dict of columns": (lambda rows: [{k: [r[k] for r in rows] for k in rows[0]}], True, False, None),
    "dict of one-element columns": (lambda rows: [{k: [v] for k, v in r.items()} for r in rows], True, True, None),
    "2-D numpy": (lambda rows: [_numeric_matrix(rows[:5]), _numeric_matrix(rows[5:])], False, False, NUMERIC),
    "1 x k numpy": (lambda rows: [_numeric_matrix([r]) for r in rows], False, False, NUMERIC),
    "1-D numpy": (lambda rows: [_numeric_matrix([r])[0] for r in rows], False, False, NUMERIC),
    "pydantic models": (lambda rows: [[Applicant(**r) for r in rows]], True, False, None),
    "one pydantic model": (lambda rows: [Applicant(**r) for r in rows], True, False, None),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_exports_what_the_same_rows_as_dicts_export(configured, shape):
    make, objects, nulls, features = SHAPES[shape]
    rows = _rows(16, 7, objects=objects, nulls=nulls)
    as_dicts, as_shape = f"dicts-{shape}", f"shape-{shape}"
    _send_as_dicts(as_dicts, [dict(r) for r in rows])
    _send(as_shape, make([dict(r) for r in rows]), features)
    assert infersight.flush()
    expected, got = _exported(configured, as_dicts), _exported(configured, as_shape)
    assert ("ml.feature.value", "income") in expected and ("ml.feature.missing", "income", "nan") in expected
    if objects:
        assert ("ml.feature.category", "plan", "pro") in expected and ("ml.feature.value", "note") in expected
    if nulls:
        assert expected[("ml.feature.missing", "vip", "absent")] == 1
        assert expected[("ml.feature.missing", "plan", "null")] == 1
    assert got == expected


def test_a_batch_split_over_many_buffered_calls_equals_one_call(configured):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 8))
    X[rng.random(X.shape) < 0.01] = np.nan
    names = [f"c{i}" for i in range(8)]

    @infersight.monitor(model="whole", version="1", features=names)
    def whole(x: np.ndarray) -> np.ndarray:
        return x[:, 0].copy()

    @infersight.monitor(model="pieces", version="1", features=names)
    def pieces(x: np.ndarray) -> np.ndarray:
        return x[:, 0].copy()

    whole(X)
    buf = np.empty((30, 8))
    for i in range(0, 3000, 30):
        buf[:] = X[i : i + 30]  # the caller reuses its array: the buffered copy must not change
        pieces(buf)
    assert infersight.flush()
    a, b = _exported(configured, "whole"), _exported(configured, "pieces")
    assert a[("ml.feature.missing", "c3", "nan")] > 0
    # sums may differ in the last bits (added in another order); everything else is equal
    for key in a:
        if isinstance(a[key], tuple):
            assert a[key][:1] + a[key][2:] == b[key][:1] + b[key][2:]
            assert math.isclose(a[key][1], b[key][1], rel_tol=1e-12, abs_tol=1e-9)
        else:
            assert a[key] == b[key]
    assert a.keys() == b.keys()


def _logged_inputs(sink: OtlpSink, model: str) -> list[Any]:
    out = []
    for _, rec in sink.log_records():
        a = attrs(rec.attributes)
        if a.get("ml.model.name") == model and a.get("event.name") == "ml.prediction":
            out.append(json.loads(a["ml.inputs"]))
    return out


def test_payload_logs_keep_integers_integers(configured):
    @infersight.monitor(model="ints", version="1", features=["support_calls", "balance"])
    def predict(x: Any) -> float:
        return 0.5

    predict({"support_calls": 2, "balance": 10.5})
    predict({"support_calls": np.int64(3), "balance": np.float64(1.5)})
    predict(pd.DataFrame({"support_calls": [2, 4], "balance": [1.5, 2.0], "plan": ["a", "b"]}))
    predict(pd.DataFrame({"support_calls": [7], "balance": [0.5]}))
    predict([{"support_calls": 2, "balance": 1.0}, {"support_calls": 5, "balance": 2.5}])
    predict({"support_calls": [1, 2], "balance": [0.5, 0.25]})
    predict(np.array([[1, 2], [3, 4]], dtype=np.int32))
    predict(np.array([[6, 7]]))
    assert infersight.flush()
    logged = _logged_inputs(configured, "ints")
    assert len(logged) == 8
    rows = [r for entry in logged for r in (entry if isinstance(entry, list) else [entry])]
    calls = [r["support_calls"] for r in rows]
    assert calls == [2, 3, 2, 4, 7, 2, 5, 1, 2, 1, 3, 6]
    assert all(type(c) is int for c in calls)
    assert [r["balance"] for r in rows[:7]] == [10.5, 1.5, 1.5, 2.0, 0.5, 1.0, 2.5]
    assert all(type(r["balance"]) is float for r in rows[:9])
    # the same text rendering on the OTLP record as in the JSON line: "2", never "2.0"
    assert '"support_calls": 2,' in json.dumps(logged[0])


def test_a_logged_batch_is_cut_to_what_fits_in_the_payload_cap(configured):
    infersight.configure(
        endpoint=configured.grpc_endpoint,
        protocol="grpc",
        log_output="none",
        payload_sample_rate=1.0,
        max_payload_bytes=1024,
        metric_export_interval=3600,
    )

    @infersight.monitor(model="capped", version="1")
    def predict(x: Any) -> Any:
        return np.zeros(len(x))

    predict(np.arange(5000 * 20, dtype=np.float64).reshape(5000, 20))
    assert infersight.flush()
    recs = [
        attrs(r.attributes) for _, r in configured.log_records() if attrs(r.attributes).get("ml.model.name") == "capped"
    ]
    assert len(recs) == 1 and recs[0]["ml.payload.truncated"] is True
    text = recs[0]["ml.inputs"]
    assert text.startswith('[{"f0": 0.0, "f1": 1.0') and text.endswith("…[truncated]")
    assert len(text.encode()) <= 1024 + len("…[truncated]".encode())
