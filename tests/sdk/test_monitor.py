"""@infersight.monitor: the call is untouched, the signals are right, faults stay inside."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from typing import Literal

import numpy as np
import pytest
import structlog

import infersight
from infersight import current_request_id
from infersight.request_context import request_scope


def by_attrs(points, **want):
    return [p for p in points if all(p.attributes.get(k.replace("_", ".")) == v for k, v in want.items())]


def attr(p, name):
    return p.attributes.get(name)


# -- the call itself is untouched ------------------------------------------------------------


def test_return_value_is_the_same_object_and_signature_is_kept(telemetry, model_name):
    result = {"score": [0.1, 0.9]}

    def predict(row: dict, threshold: float = 0.5) -> dict:
        """Score a row."""
        return result

    plain_signature = inspect.signature(predict)
    predict = infersight.monitor(model=model_name)(predict)
    assert predict({"x": 1.0}) is result
    assert predict.__name__ == "predict"
    assert predict.__doc__ == "Score a row."
    assert inspect.signature(predict) == plain_signature


def test_exceptions_propagate_unchanged_and_are_recorded(telemetry, model_name):
    boom = KeyError("missing column")

    @infersight.monitor(model=model_name, version="2")
    def predict(row):
        raise boom

    with pytest.raises(KeyError) as info:
        predict({"x": 1.0})
    assert info.value is boom
    telemetry.flush()
    span = telemetry.finished_spans()[-1]
    assert span.name == f"predict {model_name}"
    assert span.attributes["error.type"] == "KeyError"
    assert span.status.status_code.name == "ERROR"
    durations = by_attrs(telemetry.points("ml.inference.duration"), ml_model_name=model_name)
    assert [attr(p, "error.type") for p in durations] == ["KeyError"]
    # the failing call keeps its payload even though sampling would usually drop it
    logs = [r for r in telemetry.log_records() if r.attributes.get("ml.model.name") == model_name]
    assert logs and logs[0].attributes["error.type"] == "KeyError"


def test_span_attributes_and_request_id(telemetry, model_name):
    seen = []

    @infersight.monitor(model=model_name, version="7")
    def predict(rows):
        seen.append(current_request_id())
        return [0.5] * len(rows)

    predict([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}])
    with request_scope("req-from-middleware"):
        predict([{"a": 1.0}])
    assert current_request_id() is None  # nothing leaks out of the call
    telemetry.flush()
    spans = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"]
    assert len(spans) == 2
    first, second = spans
    assert first.attributes["ml.model.name"] == model_name
    assert first.attributes["ml.model.version"] == "7"
    assert first.attributes["ml.batch.size"] == 3
    assert first.attributes["ml.request.id"] == seen[0] and len(seen[0]) == 32
    assert second.attributes["ml.request.id"] == "req-from-middleware" == seen[1]


def test_request_id_on_span_equals_the_one_on_the_log_record(telemetry, model_name):
    @infersight.monitor(model=model_name)
    def predict(row):
        return 1.0

    predict({"x": 3.0})
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0]
    rec = [r for r in telemetry.log_records() if r.attributes.get("ml.model.name") == model_name][0]
    assert rec.attributes["ml.request.id"] == span.attributes["ml.request.id"]
    assert rec.trace_id == span.context.trace_id and rec.span_id == span.context.span_id
    assert json.loads(rec.attributes["ml.inputs"]) == {"x": 3.0}
    assert rec.attributes["event.name"] == "ml.prediction"


# -- every kind of callable ------------------------------------------------------------------


def test_async_functions(telemetry, model_name):
    @infersight.monitor(model=model_name)
    async def predict(row):
        await asyncio.sleep(0)
        return current_request_id()

    rid = asyncio.run(predict({"x": 1.0}))
    assert inspect.iscoroutinefunction(predict)
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0]
    assert span.attributes["ml.request.id"] == rid


def test_generators_end_the_span_when_the_stream_ends(telemetry, model_name):
    @infersight.monitor(model=model_name)
    def stream(prompt):
        for token in prompt.split():
            yield token, current_request_id()

    gen = stream("a b c")
    first = next(gen)
    assert current_request_id() is None  # the call's context does not leak between items
    rest = list(gen)
    tokens = [first, *rest]
    assert [t for t, _ in tokens] == ["a", "b", "c"]
    assert len({rid for _, rid in tokens}) == 1
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0]
    assert span.attributes["ml.stream.chunks"] == 3
    assert span.attributes["ml.request.id"] == tokens[0][1]


def test_generator_closed_early_and_send_values(telemetry, model_name):
    @infersight.monitor(model=model_name)
    def echo(first):
        got = yield first
        while True:
            got = yield got * 2

    g = echo(1)
    assert next(g) == 1
    assert g.send(5) == 10
    assert g.send(7) == 14
    g.close()  # a client that disconnects mid-stream
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0]
    assert span.attributes["ml.stream.chunks"] == 3
    assert "error.type" not in span.attributes


def test_generator_errors_propagate(telemetry, model_name):
    @infersight.monitor(model=model_name)
    def stream(n):
        yield 1
        raise RuntimeError("model crashed mid-stream")

    g = stream(2)
    assert next(g) == 1
    with pytest.raises(RuntimeError, match="mid-stream"):
        next(g)
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0]
    assert span.attributes["error.type"] == "RuntimeError"


def test_async_generators(telemetry, model_name):
    @infersight.monitor(model=model_name)
    async def stream(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i, current_request_id()

    async def consume():
        return [item async for item in stream(4)]

    items = asyncio.run(consume())
    assert [i for i, _ in items] == [0, 1, 2, 3]
    assert len({rid for _, rid in items}) == 1 and items[0][1] is not None
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0]
    assert span.attributes["ml.stream.chunks"] == 4


def test_methods_classmethods_staticmethods_and_callables(telemetry, model_name):
    class Model:
        bias = 1.0

        @infersight.monitor(model=model_name)
        def predict(self, row):
            return row["x"] + self.bias

        @classmethod
        @infersight.monitor(model=model_name)
        def from_cls(cls, row):
            return row["x"] + cls.bias

        @staticmethod
        @infersight.monitor(model=model_name)
        def static(row):
            return row["x"]

        def __call__(self, row):
            return row["x"] * 10

    m = Model()
    assert m.predict({"x": 1.0}) == 2.0
    assert Model.from_cls({"x": 1.0}) == 2.0
    assert Model.static({"x": 4.0}) == 4.0
    wrapped_callable = infersight.monitor(model=model_name)(m)
    assert wrapped_callable({"x": 2.0}) == 20.0
    telemetry.flush()
    values = by_attrs(telemetry.points("ml.feature.value"), ml_model_name=model_name, ml_feature_name="x")
    assert sum(p.count for p in values) == 4  # the instance is never taken for the input


def test_input_arg_by_name(telemetry, model_name):
    @infersight.monitor(model=model_name, input_arg="features")
    def predict(model_id, features):
        return 0.0

    predict("m1", {"age": 30.0})
    predict("m1", features={"age": 40.0})
    telemetry.flush()
    (p,) = by_attrs(telemetry.points("ml.feature.value"), ml_model_name=model_name, ml_feature_name="age")
    assert p.count == 2 and p.min == 30.0 and p.max == 40.0


# -- statistics ------------------------------------------------------------------------------


def test_feature_statistics_one_row_calls(telemetry, model_name):
    @infersight.monitor(model=model_name, version="1")
    def predict(row):
        return 0.25

    rows = [
        {"age": 30.0, "plan": "pro", "income": None, "score": float("nan"), "active": True},
        {"age": 50, "plan": "free", "income": 10.0, "score": float("inf"), "active": False},
        {"age": 40.0, "plan": "pro", "score": 1.0},  # income and active absent
    ]
    for r in rows:
        predict(r)
    telemetry.flush()
    pts = telemetry.points
    (age,) = by_attrs(pts("ml.feature.value"), ml_model_name=model_name, ml_feature_name="age")
    assert (age.count, age.sum, age.min, age.max) == (3, 120.0, 30.0, 50.0)
    assert sum(age.positive.bucket_counts) + age.zero_count == 3
    cats = {
        attr(p, "ml.category.value"): p.value
        for p in by_attrs(pts("ml.feature.category"), ml_model_name=model_name, ml_feature_name="plan")
    }
    assert cats == {"pro": 2, "free": 1}
    missing = {
        (attr(p, "ml.feature.name"), attr(p, "ml.missing.kind")): p.value
        for p in by_attrs(pts("ml.feature.missing"), ml_model_name=model_name)
    }
    assert missing == {
        ("income", "null"): 1,
        ("score", "nan"): 1,
        ("score", "inf"): 1,
        ("income", "absent"): 1,
        ("active", "absent"): 1,
    }
    (pred,) = by_attrs(pts("ml.prediction.value"), ml_model_name=model_name)
    assert pred.count == 3 and pred.sum == 0.75
    (batch,) = by_attrs(pts("ml.inference.batch_size"), ml_model_name=model_name)
    assert batch.count == 3 and batch.sum == 3


def test_integer_features_are_sketched_as_the_same_numbers_as_floats(telemetry, model_name):
    """Integer (and mixed integer/float) columns of one-row calls take the vectorised numeric
    path; the sketch is the one their float values give."""

    @infersight.monitor(model=model_name + "-int", version="1")
    def with_ints(row):
        return 0.5

    @infersight.monitor(model=model_name + "-float", version="1")
    def with_floats(row):
        return 0.5

    rng = np.random.default_rng(7)
    tenure = rng.integers(-5, 10**12, size=300).tolist()
    mixed = [float(x) if i % 3 else int(x) for i, x in enumerate(rng.integers(0, 1000, size=300))]
    for t, m in zip(tenure, mixed):
        with_ints({"tenure": t, "mixed": m, "flag": bool(t % 2)})
        with_floats({"tenure": float(t), "mixed": float(m), "flag": bool(t % 2)})
    telemetry.flush()
    pts = telemetry.points
    for name in ("tenure", "mixed"):
        (a,) = by_attrs(pts("ml.feature.value"), ml_model_name=model_name + "-int", ml_feature_name=name)
        (b,) = by_attrs(pts("ml.feature.value"), ml_model_name=model_name + "-float", ml_feature_name=name)
        assert (a.count, a.sum, a.min, a.max, a.scale, a.zero_count) == (
            b.count,
            b.sum,
            b.min,
            b.max,
            b.scale,
            b.zero_count,
        )
        assert (a.positive.offset, list(a.positive.bucket_counts)) == (
            b.positive.offset,
            list(b.positive.bucket_counts),
        )
        assert (a.negative.offset, list(a.negative.bucket_counts)) == (
            b.negative.offset,
            list(b.negative.bucket_counts),
        )
    flags = {
        attr(p, "ml.category.value"): p.value
        for p in by_attrs(pts("ml.feature.category"), ml_model_name=model_name + "-int", ml_feature_name="flag")
    }
    assert sum(flags.values()) == 300 and set(flags) <= {"true", "false"}  # bools stay categories
    assert not by_attrs(pts("ml.feature.value"), ml_model_name=model_name + "-int", ml_feature_name="flag")


def test_feature_statistics_batches_add_up_to_the_rows(telemetry, model_name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    X[::50, 1] = np.nan

    @infersight.monitor(model=model_name, features=["a", "b", "c", "d"])
    def predict(batch):
        return np.nan_to_num(batch).sum(axis=1)

    predict(X)
    predict(X[:100])
    telemetry.flush()
    for name in "abcd":
        (p,) = by_attrs(telemetry.points("ml.feature.value"), ml_model_name=model_name, ml_feature_name=name)
        nan = 12 if name == "b" else 0
        assert p.count == 600 - nan
        assert p.zero_count + sum(p.positive.bucket_counts) + sum(p.negative.bucket_counts) == p.count
    (m,) = by_attrs(telemetry.points("ml.feature.missing"), ml_model_name=model_name)
    assert (attr(m, "ml.feature.name"), attr(m, "ml.missing.kind"), m.value) == ("b", "nan", 12)
    (pred,) = by_attrs(telemetry.points("ml.prediction.value"), ml_model_name=model_name)
    assert pred.count == 600


def test_probability_outputs_classes_and_nulls(telemetry, model_name):
    @infersight.monitor(model=model_name, classes=["ham", "spam"], default_output="unknown")
    def classify(texts):
        return np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])

    @infersight.monitor(model=model_name + "-fallback", default_output="unknown")
    def fallback(text):
        return "unknown"

    classify(["a", "b", "c"])
    fallback("x")
    fallback("y")
    telemetry.flush()
    classes = {
        attr(p, "ml.prediction.label"): p.value
        for p in by_attrs(telemetry.points("ml.prediction.class"), ml_model_name=model_name)
    }
    assert classes == {"ham": 1, "spam": 2}
    (score,) = by_attrs(telemetry.points("ml.prediction.value"), ml_model_name=model_name)
    assert score.attributes["ml.output.name"] == "score" and math.isclose(score.sum, 2.4)
    (null,) = by_attrs(telemetry.points("ml.prediction.null"), ml_model_name=model_name + "-fallback")
    assert null.attributes["ml.null.kind"] == "default" and null.value == 2


def test_categories_are_bounded_with_other(model_name):
    from infersight.testing import InMemoryTelemetry

    t = InMemoryTelemetry.install(log_output="none", max_categories=3)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 1.0

    for i in range(10):
        predict({"city": f"c{i}"})
    t.flush()
    cats = {
        attr(p, "ml.category.value"): p.value
        for p in by_attrs(t.points("ml.feature.category"), ml_model_name=model_name)
    }
    assert cats == {"c0": 1, "c1": 1, "c2": 1, "__other__": 7}


def test_attribute_cardinality_is_bounded_and_overflow_counted(model_name):
    from infersight.testing import InMemoryTelemetry

    t = InMemoryTelemetry.install(log_output="none", max_attribute_sets=20)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 1.0

    predict({f"feature_{i}": float(i) for i in range(100)})
    t.flush()
    values = t.points("ml.feature.value")
    overflow = [p for p in values if p.attributes.get("otel.metric.overflow")]
    assert len(values) <= 21 and len(overflow) == 1  # the bound plus one overflow series
    assert sum(p.count for p in values) == 100  # values past the bound still count
    dropped = {attr(p, "ml.telemetry.reason"): p.value for p in t.points("ml.telemetry.dropped")}
    assert dropped["cardinality_limit"] >= 80


# -- payload logs ----------------------------------------------------------------------------


def test_redaction_in_logs_and_metric_attributes(model_name):
    from infersight.testing import InMemoryTelemetry

    t = InMemoryTelemetry.install(log_output="none", payload_sample_rate=1.0, redact=["password", "card_*"])

    @infersight.monitor(model=model_name)
    def predict(row):
        return {"ok": True, "card_last4": "4242"}

    predict({"user": "ann", "password": "hunter2", "card_type": "visa", "nested": [{"Password": "x"}], "amount": 5.0})
    t.flush()
    rec = [r for r in t.log_records() if r.attributes.get("ml.model.name") == model_name][0]
    assert "hunter2" not in rec.attributes["ml.inputs"] and "visa" not in rec.attributes["ml.inputs"]
    assert json.loads(rec.attributes["ml.inputs"])["nested"] == [{"Password": "[REDACTED]"}]
    assert "4242" not in rec.attributes["ml.outputs"]
    names = {
        attr(p, "ml.feature.name")
        for name in ("ml.feature.value", "ml.feature.category")
        for p in by_attrs(t.points(name), ml_model_name=model_name)
    }
    assert "password" not in names and "card_type" not in names
    assert {"user", "amount"} <= names


def test_payloads_are_size_capped_with_a_marker(model_name):
    from infersight.testing import InMemoryTelemetry

    t = InMemoryTelemetry.install(log_output="none", payload_sample_rate=1.0, max_payload_bytes=200)

    @infersight.monitor(model=model_name)
    def predict(rows):
        return [0.0] * len(rows)

    predict([{"text": "x" * 50, "n": i} for i in range(100)])
    t.flush()
    rec = [r for r in t.log_records() if r.attributes.get("ml.model.name") == model_name][0]
    assert rec.attributes["ml.inputs"].endswith("…[truncated]")
    assert len(rec.attributes["ml.inputs"].encode()) <= 200 + len("…[truncated]".encode())
    assert rec.attributes["ml.payload.truncated"] is True


def test_payload_sampling_is_separate_and_failures_are_kept(model_name):
    from infersight.testing import InMemoryTelemetry

    t = InMemoryTelemetry.install(log_output="none", payload_sample_rate=0.0)

    @infersight.monitor(model=model_name)
    def predict(row):
        if row["x"] < 0:
            raise ValueError("negative")
        return None if row["x"] == 0 else 1.0

    for x in (1.0, 2.0, 0.0, -1.0):
        try:
            predict({"x": x})
        except ValueError:
            pass
    t.flush()
    logged = [
        json.loads(r.attributes["ml.inputs"])["x"]
        for r in t.log_records()
        if r.attributes.get("ml.model.name") == model_name
    ]
    assert sorted(logged) == [-1.0, 0.0]  # the error and the null answer; the good calls are sampled out
    assert len([s for s in t.finished_spans() if s.name == f"predict {model_name}"]) == 4


def test_application_structlog_and_logging_configuration_untouched(telemetry, model_name, capsys):
    import logging

    structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
    before = structlog.get_config()
    root_handlers = list(logging.getLogger().handlers)
    try:
        infersight.configure(exporter="none", log_output="stdout", payload_sample_rate=1.0)

        @infersight.monitor(model=model_name)
        def predict(row):
            return 1.0

        predict({"x": 1.0})
        line = [ln for ln in capsys.readouterr().out.splitlines() if model_name in ln][0]
        event = json.loads(line)  # our own JSON lines, not the app's KeyValueRenderer
        assert event["event"] == "ml.prediction" and event["ml.model.name"] == model_name
        assert structlog.get_config() == before
        assert logging.getLogger().handlers == root_handlers
    finally:
        structlog.reset_defaults()


# -- feedback --------------------------------------------------------------------------------


def test_record_feedback_for_single_and_batch_calls(telemetry, model_name):
    @infersight.monitor(model=model_name)
    def predict(rows):
        return [1, 0]

    predict([{"x": 1.0}, {"x": 2.0}])
    telemetry.flush()
    rid = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][0].attributes["ml.request.id"]
    infersight.record_feedback(rid, [1, 1], model=model_name)
    infersight.record_feedback(rid, np.int64(1), model=model_name, source="labelling-team")
    infersight.record_feedback(None, 1)  # type: ignore[arg-type] - counted, never raised
    telemetry.flush()
    fb = [r for r in telemetry.log_records() if r.attributes.get("event.name") == "ml.feedback"]
    assert [json.loads(r.attributes["ml.feedback.actual"]) for r in fb] == [[1, 1], 1]
    assert {r.attributes["ml.request.id"] for r in fb} == {rid}
    assert fb[1].attributes["ml.feedback.source"] == "labelling-team"
    dropped = {attr(p, "ml.telemetry.reason"): p.value for p in telemetry.points("ml.telemetry.dropped")}
    assert dropped.get("feedback_without_request_id") == 1


# -- telemetry isolation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        np.array([object(), "x", 1], dtype=object),
        np.array([[1, "a"], [None, 2.5]], dtype=object),
        [[1, 2, 3], [4], []],
        np.zeros((0, 5)),
        np.zeros((1, 1_000_000)),
        {"a": [1, 2], "b": [1]},
        {"nested": {"deep": [1, {"x": object()}]}},
        b"\x00\x01binary",
        object(),
    ],
    ids=["object-array", "mixed-2d", "ragged", "zero-rows", "wide-row", "uneven-columns", "nested", "bytes", "object"],
)
def test_weird_inputs_never_break_the_call(telemetry, model_name, payload):
    sentinel = object()

    @infersight.monitor(model=model_name)
    def predict(x):
        return sentinel

    assert predict(payload) is sentinel
    telemetry.flush()
    assert [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"]


@pytest.mark.parametrize(
    "shape",
    ["one row", "one row, int prediction", "list of dicts", "mixed list of dicts", "dict of columns", "object array"],
)
def test_an_int_too_large_for_a_float_is_counted_as_inf_and_loses_nothing(telemetry, model_name, shape):
    """``10**400`` (and ``-10**400``) has no float: the value rule counts it missing ``inf``,
    the float it would round to; the rest of the call's statistics, and every other call's
    in the same export, arrive as usual (an OverflowError at export used to lose them all)."""
    huge = [10**400, -(10**400)]
    rows = [{"x": huge[0], "y": 2.0}, {"x": 3, "y": 2.0}, {"x": huge[1], "y": 2.0}, {"x": 1, "y": 2.0}]

    @infersight.monitor(model=model_name, features=["x", "y"])
    def predict(batch):
        return 7 if shape == "one row, int prediction" else 0.5

    if shape.startswith("one row"):
        results = [predict(r) for r in rows]
    elif shape == "list of dicts":
        results = [predict(rows[:2]), predict(rows[2:])]
    elif shape == "mixed list of dicts":
        results = [predict([rows[0], {"x": "text", "y": 2.0}, *rows[1:]])]
    elif shape == "dict of columns":
        results = [predict({"x": [r["x"] for r in rows], "y": [r["y"] for r in rows]})]
    else:
        results = [predict(np.array([[r["x"], r["y"]] for r in rows], dtype=object))]
    assert set(results) == {7 if shape == "one row, int prediction" else 0.5}
    telemetry.flush()
    (x,) = by_attrs(telemetry.points("ml.feature.value"), ml_model_name=model_name, ml_feature_name="x")
    assert (x.count, x.sum, x.min, x.max) == (2, 4.0, 1.0, 3.0)
    (y,) = by_attrs(telemetry.points("ml.feature.value"), ml_model_name=model_name, ml_feature_name="y")
    assert y.count == 4 + (shape == "mixed list of dicts")
    missing = {
        (attr(p, "ml.feature.name"), attr(p, "ml.missing.kind")): p.value
        for p in by_attrs(telemetry.points("ml.feature.missing"), ml_model_name=model_name)
    }
    assert missing == {("x", "inf"): 2}
    (calls,) = by_attrs(telemetry.points("ml.inference.duration"), ml_model_name=model_name)
    assert calls.count == len(results)
    assert not telemetry.points("ml.telemetry.dropped")


def test_rows_with_keys_that_are_not_strings_are_sketched_by_their_text(model_name):
    """A dict row keyed by ``1`` (or ``None``, a tuple) is a feature named ``"1"``: its
    statistics carry that name and redaction reads the same name (the redaction check used to
    raise TypeError, losing the call's statistics as a ``monitor_finish`` fault)."""
    from infersight.testing import InMemoryTelemetry

    t = InMemoryTelemetry.install(log_output="none", payload_sample_rate=1.0, redact=["secret", "4*"])

    @infersight.monitor(model=model_name)
    def predict(row):
        return 0.5

    one_row = {1: 2.0, "a": 3.0, None: "n", 42: "hidden", (1, 2): 5.0, "secret": 9.0}
    assert predict(one_row) == 0.5
    assert predict([{1: 4.0, "a": 1.0, 42: "hidden"}, {1: 6.0, "a": 1.0, 42: "hidden"}]) == 0.5
    t.flush()
    assert not t.points("ml.telemetry.dropped")
    names = {
        attr(p, "ml.feature.name")
        for name in ("ml.feature.value", "ml.feature.category")
        for p in by_attrs(t.points(name), ml_model_name=model_name)
    }
    assert names == {"1", "a", "None", "(1, 2)"}  # 42 and "secret" redacted by their names
    (one,) = by_attrs(t.points("ml.feature.value"), ml_model_name=model_name, ml_feature_name="1")
    assert (one.count, one.sum) == (3, 12.0)
    logged = [r.attributes["ml.inputs"] for r in t.log_records() if r.attributes.get("ml.model.name") == model_name]
    assert len(logged) == 2 and not any("hidden" in text or "9.0" in text for text in logged)


def test_a_broken_exporter_never_reaches_the_caller(model_name):
    class Broken:
        def export(self, *a, **k):
            raise ConnectionError("collector down")

        def shutdown(self, *a, **k):
            pass

        def force_flush(self, *a, **k):
            return True

    infersight.configure(
        span_exporter=Broken(),
        metric_exporter=Broken(),
        log_exporter=Broken(),
        log_output="none",
        payload_sample_rate=1.0,
    )

    @infersight.monitor(model=model_name)
    def predict(row):
        return 42

    assert [predict({"x": float(i)}) for i in range(5)] == [42] * 5
    infersight.flush()  # export fails inside, never raises


def test_internal_faults_are_counted_and_logged_once(telemetry, model_name, caplog, monkeypatch):
    from infersight import feature_stats

    def explode(self, *a, **k):
        raise MemoryError("simulated")

    monkeypatch.setattr(feature_stats.FeatureStats, "record_call", explode)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 7

    with caplog.at_level("WARNING", logger="infersight"):
        assert [predict({"x": 1.0}) for _ in range(3)] == [7, 7, 7]
    monkeypatch.undo()
    telemetry.flush()
    dropped = {attr(p, "ml.telemetry.reason"): p.value for p in telemetry.points("ml.telemetry.dropped")}
    assert dropped["monitor_finish"] == 3
    assert len([r for r in caplog.records if "monitor_finish" in r.getMessage()]) <= 1


def test_overhead_budget_sheds_payload_logs_then_stats(model_name):
    from infersight.testing import InMemoryTelemetry

    # A budget no real telemetry can meet: our cost is never 0.01% of a ~free predict.
    t = InMemoryTelemetry.install(log_output="none", payload_sample_rate=1.0, overhead_budget=0.0001)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 1.0

    for i in range(2000):
        predict({"x": float(i)})
    t.flush()
    dropped = {attr(p, "ml.telemetry.reason"): p.value for p in t.points("ml.telemetry.dropped")}
    assert dropped.get("overhead_budget_payload_log", 0) > 0
    assert dropped.get("overhead_budget_stats", 0) > 0
    (calls,) = by_attrs(t.points("ml.inference.duration"), ml_model_name=model_name)
    assert calls.count == 2000  # call counts and latency are never shed


def test_model_age_from_trained_at(telemetry, model_name):
    @infersight.monitor(model=model_name, version="1", trained_at="2026-01-01T00:00:00Z")
    def predict(row):
        return 1.0

    predict({"x": 1.0})
    telemetry.flush()
    ages = by_attrs(telemetry.points("ml.model.age"), ml_model_name=model_name)
    assert ages and ages[-1].value > 0


def test_default_model_name_and_bare_decorator(telemetry):
    @infersight.monitor
    def score_customer(row):
        return 0.1

    assert score_customer({"x": 1.0}) == 0.1
    telemetry.flush()
    assert any(s.name.endswith("score_customer") for s in telemetry.finished_spans())


# -- schema validation in the request path ---------------------------------------------------


def test_reference_schema_violations_are_counted_and_on_span(tmp_path, telemetry, model_name):
    import pandas as pd

    from infersight.stats.reference import Reference

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"age": rng.integers(18, 90, 500).astype(float), "plan": rng.choice(["free", "pro"], 500)})
    path = tmp_path / "reference.json"
    Reference.from_data(train, model=model_name).save(path)

    @infersight.monitor(model=model_name, reference=str(path))
    def predict(row):
        return 0.5

    assert predict({"age": 40.0, "plan": "pro"}) == 0.5
    assert predict({"age": 4000.0, "plan": "enterprise"}) == 0.5  # recorded, not raised
    telemetry.flush()
    counts = {
        (attr(p, "ml.feature.name"), attr(p, "ml.schema.rule")): p.value
        for p in by_attrs(telemetry.points("ml.schema.violations"), ml_model_name=model_name)
    }
    assert counts == {("age", "range"): 1, ("plan", "allowed"): 1}
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][-1]
    events = {
        (e.attributes["ml.feature.name"], e.attributes["ml.schema.rule"])
        for e in span.events
        if e.name == "ml.schema.violation"
    }
    assert events == {("age", "range"), ("plan", "allowed")}
    # a violating call keeps its payload regardless of sampling
    logged = [r for r in telemetry.log_records() if r.attributes.get("ml.model.name") == model_name]
    assert any("enterprise" in r.attributes["ml.inputs"] for r in logged)


def test_on_violation_raise_stops_before_the_model(telemetry, model_name):
    calls = []

    def predict(age: float, plan: Literal["free", "pro"]) -> float:
        calls.append(age)
        return 1.0

    from infersight.stats.schema import Schema

    schema = Schema.from_function(predict)
    guarded = infersight.monitor(
        model=model_name,
        schema=schema,
        on_violation="raise",
        input_arg=None,
        features=lambda age: {"age": age, "plan": "gold"},
    )(predict)
    with pytest.raises(infersight.SchemaViolation) as info:
        guarded(30.0, "pro")
    assert "plan" in str(info.value) and "allowed" in str(info.value) and "gold" in str(info.value)
    assert calls == []  # the model never ran
    telemetry.flush()
    span = [s for s in telemetry.finished_spans() if s.name == f"predict {model_name}"][-1]
    assert span.attributes["error.type"] == "SchemaViolation"
