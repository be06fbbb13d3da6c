"""Every input shape a predict function takes exports the same statistics as the same rows sent
one dict at a time, read back from a real loopback OTLP receiver; payload logs keep integers.
Each shape is sent twice: through the C extension's converters, and through the Python code
they follow (what ``INFERSIGHT_PURE_PYTHON=1`` or an install without a compiler runs)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

import infersight
from infersight import feature_stats, payload
from infersight.stats import sketch
from support.otlp_sink import OtlpSink, attrs

REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
PURE = os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"
# What the C extension adds to the shape conversions, by module (``None`` when it is off).
CONVERTERS = [
    (payload, "_row_dict"),
    (payload, "_row_of_items"),
    (payload, "_items_row"),
    (payload, "_columns_matrix"),
    (feature_stats, "_records_matrix"),
    (sketch, "_c_sketch_rows"),
]


@pytest.fixture(scope="module")
def sink():
    with OtlpSink() as s:
        yield s


@pytest.fixture(params=["C", "Python"])
def path(request, monkeypatch):
    """Run the test through the C converters, then through the Python code alone."""
    if request.param == "C":
        if any(getattr(mod, name) is None for mod, name in CONVERTERS):
            if REQUIRED and not PURE:
                pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
            pytest.skip("the C converters are not in use")
    else:
        for mod, name in CONVERTERS:
            monkeypatch.setattr(mod, name, None)
    return request.param


@pytest.fixture
def configured(sink, path):
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


def _numpy_columns(rows: list[dict[str, Any]], dtype: Any = np.float64) -> dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in rows], dtype=dtype) for k in NUMERIC}


def _ints(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: int(v) if math.isfinite(v) else 0 for k, v in r.items()} for r in rows]


def _odd_rows(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Lists of dicts the C converter hands back to the Python path, in part or whole: a row
    with other names or another order, values of other types (numpy scalars, a list, an int
    past 64 bits, a str subclass)."""
    rows = [dict(r) for r in rows]
    rows[9] = dict(reversed(list(rows[9].items())))
    rows[11]["tenure"] = np.int64(rows[11]["tenure"])
    rows[12]["plan"] = ["a", "list"]
    rows[13]["tenure"] = 2**70  # an int past int64, not past a float
    rows[14]["plan"] = _Plan(rows[14]["plan"])
    rows[15]["vip"] = np.bool_(rows[15]["vip"])
    return [rows[:8], rows[8:10], rows[10:12], rows[12:13], rows[13:14], rows[14:]]


class _Plan(str):
    pass


NUMERIC = ["income", "tenure", "score"]

# shape name -> (make the inputs from rows, rows use objects, rows have nulls, feature names)
SHAPES: dict[str, tuple[Callable[[list[dict[str, Any]]], list[Any]], bool, bool, list[str] | None]] = {
    "list of dicts": (lambda rows: [rows[:7], rows[7:]], True, True, None),
    "list of dicts, same names": (lambda rows: [rows[:5], rows[5:]], True, False, None),
    "list of dicts, numbers only": (lambda rows: [rows[:5], rows[5:]], False, False, None),
    "list holding one dict": (lambda rows: [[r] for r in rows], True, True, None),
    "DataFrame": (lambda rows: [_frame(rows[:9]), _frame(rows[9:])], True, False, None),
    "one-row DataFrames": (lambda rows: [_frame([r]) for r in rows], True, False, None),
    "dict of columns": (lambda rows: [{k: [r[k] for r in rows] for k in rows[0]}], True, False, None),
    "dict of numpy columns": (lambda rows: [_numpy_columns(rows[:6]), _numpy_columns(rows[6:])], False, False, None),
    "dict of int numpy columns": (
        lambda rows: [_numpy_columns(_ints(rows[:6]), np.int64), _numpy_columns(_ints(rows[6:]), np.int64)],
        False,
        False,
        None,
    ),
    "dict of one-element numpy columns": (
        lambda rows: [{k: np.array([v]) for k, v in r.items()} for r in rows],
        False,
        False,
        None,
    ),
    "dict of one-element columns": (lambda rows: [{k: [v] for k, v in r.items()} for r in rows], True, True, None),
    "2-D numpy": (lambda rows: [_numeric_matrix(rows[:5]), _numeric_matrix(rows[5:])], False, False, NUMERIC),
    "1 x k numpy": (lambda rows: [_numeric_matrix([r]) for r in rows], False, False, NUMERIC),
    "1-D numpy": (lambda rows: [_numeric_matrix([r])[0] for r in rows], False, False, NUMERIC),
    "pydantic models": (lambda rows: [[Applicant(**r) for r in rows]], True, False, None),
    "pydantic models, two lists": (
        lambda rows: [[Applicant(**r) for r in rows[:3]], [Applicant(**r) for r in rows[3:]]],
        True,
        False,
        None,
    ),
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
    if "int numpy" in shape:  # the same rows with every value an integer
        as_dicts = f"int-dicts-{shape}"
        _send_as_dicts(as_dicts, _ints(rows))
        assert infersight.flush()
        expected, got = _exported(configured, as_dicts), _exported(configured, as_shape)
        assert ("ml.feature.value", "income") in expected
        _assert_same(got, expected)
        return
    assert ("ml.feature.value", "income") in expected and ("ml.feature.missing", "income", "nan") in expected
    if objects:
        assert ("ml.feature.category", "plan", "pro") in expected and ("ml.feature.value", "note") in expected
    if nulls:
        assert expected[("ml.feature.missing", "vip", "absent")] == 1
        assert expected[("ml.feature.missing", "plan", "null")] == 1
    _assert_same(got, expected)


def _assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, but for a sketch's sum, which may differ in its last bits: the same values are
    added in another order when a shape is buffered as a batch rather than as rows."""
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        if isinstance(want, tuple):
            assert got[key][:1] + got[key][2:] == want[:1] + want[2:], key
            assert math.isclose(got[key][1], want[1], rel_tol=1e-12, abs_tol=1e-9), key
        else:
            assert got[key] == want, key


def test_lists_of_dicts_the_converter_hands_back_export_what_the_dicts_export(configured):
    rows = _rows(16, 11)
    odd = _odd_rows(rows)
    _send_as_dicts("odd-dicts", [r for batch in odd for r in batch])
    _send("odd-lists", odd)
    assert infersight.flush()
    expected, got = _exported(configured, "odd-dicts"), _exported(configured, "odd-lists")
    assert ("ml.feature.category", "plan", "pro") in expected and ("ml.feature.value", "plan") in expected
    _assert_same(got, expected)


def test_redacted_fields_of_a_list_of_dicts_are_left_out(sink, path):
    sink.clear()
    infersight.configure(
        endpoint=sink.grpc_endpoint,
        protocol="grpc",
        log_output="none",
        metric_export_interval=3600,
        redact=["plan"],
    )
    rows = _rows(16, 5, nulls=False)
    _send_as_dicts("redacted-dicts", [dict(r) for r in rows])
    _send("redacted-lists", [rows[:8], rows[8:]])
    assert infersight.flush()
    expected, got = _exported(sink, "redacted-dicts"), _exported(sink, "redacted-lists")
    assert not any(key[1] == "plan" for key in expected) and ("ml.feature.value", "note") in expected
    _assert_same(got, expected)


def test_columns_the_caller_reuses_after_the_call_keep_their_values_in_the_statistics(configured):
    """A dict of numpy columns is buffered as a copy: a server that fills the same arrays for
    its next request does not change what the last one recorded."""
    X = np.random.default_rng(5).normal(size=(40, 4))
    columns = {f"c{i}": X[:, i].copy() for i in range(4)}
    _send("reused-columns", [columns])
    for col in columns.values():
        col[:] = 1e6
    assert infersight.flush()
    got = _exported(configured, "reused-columns")
    _send("fresh-columns", [{f"c{i}": X[:, i].copy() for i in range(4)}])
    assert infersight.flush()
    _assert_same(got, _exported(configured, "fresh-columns"))


def test_pure_python_variable_turns_the_converters_off():
    probe = (
        "from infersight import feature_stats, payload; from infersight.stats import sketch; "
        "print(payload._row_dict is None, payload._row_of_items is None, feature_stats._records_matrix is None, "
        "sketch._c_sketch_rows is None, payload._columns_matrix is None)"
    )
    env = {**os.environ, "INFERSIGHT_PURE_PYTHON": "1"}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True"] * 5


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


def test_the_c_converters_take_the_common_shapes_whole():
    if feature_stats._records_matrix is None or payload._row_of_items is None:
        if REQUIRED and not PURE:
            pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
        pytest.skip("the C converters are not in use")
    acc = feature_stats.FeatureStats()
    rows = _rows(30_000, 2, nulls=False)  # 6 names: 10,922 rows make 64k values
    acc.record_rows(("m", "1"), rows)
    assert acc._state.rows.get(("m", "1"), []) == []  # no row buffered one by one
    assert [n for _, _, n in acc._state.blocks[("m", "1")]] == [10_922, 10_922, 8_156]
    assert payload._row_of_items({"a": np.array([1.5]), "b": np.array([2])}, np.ndarray) == {"a": 1.5, "b": 2}
    assert payload._row_of_items({"a": np.array([1.5, 2.0])}, np.ndarray) is None
    assert payload._row_dict(("a", "b"), [1, "x"]) == {"a": 1, "b": "x"}
    X = np.arange(12.0).reshape(4, 3)
    out = np.empty((3, 4))
    assert payload._columns_matrix({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}, np.ndarray, out) == ("a", "b", "c")
    assert out.tolist() == X.T.tolist()  # strided views read as they are
    for odd in (
        {"a": X[:, 0].astype(np.float32), "b": X[:, 1], "c": X[:, 2]},
        {"a": X[:, 0].astype(np.int64), "b": X[:, 1], "c": X[:, 2]},
        {1: X[:, 0], "b": X[:, 1], "c": X[:, 2]},
        {"a": X[:3, 0], "b": X[:3, 1], "c": X[:3, 2]},
        {"a": X[:, :2], "b": X[:, 1], "c": X[:, 2]},
        {"a": X[:, 0].view(np.matrix), "b": X[:, 1], "c": X[:, 2]},
        {"a": list(X[:, 0]), "b": X[:, 1], "c": X[:, 2]},
    ):
        assert payload._columns_matrix(odd, np.ndarray, out) is None
