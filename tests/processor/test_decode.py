"""Decoding OTLP into plain points, standalone (no storage, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infersight.processor.ingest.decode import (
    decode_logs_request,
    decode_metrics_request,
    decode_traces_request,
    parse_request,
)
from infersight.processor.ingest.points import MetricPoint, RequestError
from infersight.processor.ingest.temporality import CumulativeToDelta, subtract_sketch
from infersight.stats.sketch import ExpHistogram


def _reader(temporality=AggregationTemporality.DELTA):
    reader = InMemoryMetricReader(preferred_temporality={Counter: temporality, Histogram: temporality})
    mp = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="ml.feature.value", aggregation=ExponentialBucketHistogramAggregation())],
    )
    return reader, mp.get_meter("t")


def test_metrics_request_decodes_from_bytes_and_message():
    reader, meter = _reader()
    h = meter.create_histogram("ml.feature.value")
    values = np.random.default_rng(1).uniform(0.001, 1000, 500)
    for v in values:
        h.record(float(v), {"ml.model.name": "m", "ml.feature.name": "f"})
    meter.create_counter("ml.feature.category").add(3, {"ml.category.value": "x"})
    msg = encode_metrics(reader.get_metrics_data())
    for given_ in (msg, msg.SerializeToString()):
        pts = {p.name: p for p in decode_metrics_request(given_)}
        assert pts["ml.feature.value"].sketch == ExpHistogram.from_values(values)
        assert pts["ml.feature.value"].temporality == "delta"
        assert pts["ml.feature.category"].value == 3.0 and pts["ml.feature.category"].monotonic
        assert pts["ml.feature.value"].attributes == {"ml.model.name": "m", "ml.feature.name": "f"}


def test_traces_and_logs_decode_standalone():
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    with tp.get_tracer("t").start_as_current_span("predict m", attributes={"ml.model.name": "m"}):
        pass
    spans = decode_traces_request(encode_spans(exporter.get_finished_spans()).SerializeToString())
    assert [s.name for s in spans] == ["predict m"] and len(spans[0].trace_id) == 32
    assert spans[0].duration_s >= 0 and not spans[0].error

    logs_exp = InMemoryLogRecordExporter()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs_exp))
    lp.get_logger("t").emit(event_name="ml.feedback", attributes={"ml.request.id": "r1", "ml.feedback.actual": "1"})
    logs = decode_logs_request(encode_logs(logs_exp.get_finished_logs()))
    assert logs[0].event_name == "ml.feedback" and logs[0].attributes["ml.request.id"] == "r1"


def test_cumulative_sums_are_differenced_with_reset_detection():
    c = CumulativeToDelta()

    def p(v, start, t):
        return MetricPoint("n", "sum", {}, {"a": 1}, start, t, "cumulative", True, float(v))

    staged: dict = {}
    out = c.convert([p(5, 1, 10), p(8, 1, 20), p(8, 1, 20), p(2, 30, 40), p(1, 30, 50)], staged)
    # 5 new; +3; repeat ignored; new start time (restart) → 2 counted in full; decrease → reset → 1
    assert [d.value for d in out] == [5, 3, 2, 1]
    assert all(d.temporality == "delta" for d in out)
    # Nothing is kept until the batch is committed: the same points convert the same way again.
    assert [d.value for d in c.convert([p(5, 1, 10)], {})] == [5]
    c.commit(staged)
    assert [d.value for d in c.convert([p(4, 30, 60)], {})] == [3]
    # A first point without a start time is only a baseline.
    other = MetricPoint("n", "sum", {}, {"a": 2}, 0, 10, "cumulative", True, 9.0)
    assert c.convert([other], {}) == []


@given(st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=300), st.lists(st.floats(-1e6, 1e6), max_size=300))
@settings(max_examples=150, deadline=None)
def test_subtracting_cumulative_sketches_gives_the_sketch_of_the_new_values(before, new):
    prev = ExpHistogram.from_values(before)
    cur = ExpHistogram.from_values(before + new)
    delta = subtract_sketch(cur, prev)
    assert delta is not None
    expected = ExpHistogram.from_values(new)
    assert delta.count == expected.count
    if expected.count:
        shifted = expected.downscale(expected.scale - delta.scale) if expected.has_buckets else expected
        assert delta.positive.trimmed().counts.tolist() == shifted.positive.trimmed().counts.tolist()
        assert delta.negative.trimmed().counts.tolist() == shifted.negative.trimmed().counts.tolist()
        assert delta.zero_count == expected.zero_count
        assert delta.min <= expected.min + 1e-9 * abs(expected.min) or delta.min == pytest.approx(expected.min)


def test_json_ids_are_hex_and_bad_documents_say_what_is_wrong():
    doc = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "attributes": [{"key": "event.name", "value": {"stringValue": "ml.prediction"}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    rec = decode_logs_request(parse_request("logs", json.dumps(doc).encode(), "application/json"))[0]
    assert rec.trace_id == "0af7651916cd43dd8448eb211c80319c" and rec.event_name == "ml.prediction"
    with pytest.raises(RequestError, match="not hex"):
        parse_request(
            "logs",
            json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}).encode(),
            "application/json",
        )
    with pytest.raises(RequestError, match="nested too deeply"):
        parse_request("metrics", b'{"a":' * 100000 + b"1" + b"}" * 100000, "application/json")
    with pytest.raises(RequestError, match="not valid JSON"):
        parse_request("metrics", b"{nope", "application/json")
    with pytest.raises(RequestError, match="not a protobuf"):
        parse_request("metrics", b"\xff\xff\xff\xff", "application/x-protobuf")
