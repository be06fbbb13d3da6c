"""A day with the processor: real OTel SDK exporters send over gRPC and HTTP, and the API
answers with what arrived, merged over windows."""

from __future__ import annotations

import gzip
import json
import math
import time

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.trace import Status, StatusCode

from infersight.stats.sketch import ExpHistogram


def web(p, path: str, **params):
    r = httpx.get(f"http://127.0.0.1:{p.ports['web']}{path}", params=params, timeout=10)
    return r


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_feature_distribution_arrives_and_matches_the_sdk_sketch(start_processor, otel, attrs, transport):
    p = start_processor()
    mp = otel.metrics(p, transport)
    meter = mp.get_meter("test")
    value = meter.create_histogram("ml.feature.value")
    missing = meter.create_counter("ml.feature.missing")
    category = meter.create_counter("ml.feature.category")
    values = np.random.default_rng(7).lognormal(3, 1, 2000)
    for v in values:
        value.record(float(v), attrs("income"))
    missing.add(4, attrs("income", **{"ml.missing.kind": "nan"}))
    missing.add(1, attrs("income", **{"ml.missing.kind": "null"}))
    for c, n in (("a", 5), ("b", 2), ("__other__", 1)):
        category.add(n, attrs("plan", **{"ml.category.value": c}))
    assert mp.force_flush()

    body = web(p, "/api/models/churn/features/income").json()
    assert body["count"] == 2000
    assert body["missing"] == {"nan": 4, "null": 1}
    assert body["min"] == pytest.approx(values.min())
    assert body["max"] == pytest.approx(values.max())
    assert body["sum"] == pytest.approx(values.sum())
    # The OTel SDK's exponential histogram and the SDK's vectorised sketch agree bucket for bucket.
    assert ExpHistogram.from_dict(body["sketch"]) == ExpHistogram.from_values(values)
    plan = web(p, "/api/models/churn/features/plan").json()
    assert plan["categories"] == {"a": 5, "b": 2, "__other__": 1}
    assert plan["count"] == 8

    model = web(p, "/api/models/churn").json()
    assert model["versions"] == ["1"]
    assert [f["name"] for f in model["features"]] == ["income", "plan"]
    assert model["windows"] >= 1
    assert web(p, "/api/models").json()["models"][0]["model"] == "churn"


def test_windows_merge_over_ranges_start_inclusive_end_exclusive(start_processor, otel, attrs):
    p = start_processor(window="1s")
    mp = otel.metrics(p)
    counter = mp.get_meter("t").create_counter("ml.prediction.class")
    sent: list[tuple[float, int]] = []
    for n in (3, 5, 7):
        # Export just after a second boundary, so the point's own timestamp (taken inside the
        # flush) falls in the same 1 s window as the clock reading, even on a loaded machine.
        time.sleep(1.1 - time.time() % 1.0)
        sent.append((time.time(), n))
        counter.add(n, attrs(**{"ml.output.name": "label", "ml.prediction.label": "yes"}))
        assert mp.force_flush()
    everything = web(p, "/api/models/churn/outputs/label").json()
    assert everything["classes"] == {"yes": 15}
    assert everything["windows"] == 3
    first_window = math.floor(sent[0][0])
    only_first = web(p, "/api/models/churn/outputs/label", start=first_window, end=first_window + 1).json()
    assert only_first["classes"] == {"yes": 3}
    iso_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first_window + 1))
    later = web(p, "/api/models/churn/outputs/label", start=iso_start).json()
    assert later["classes"] == {"yes": 12}


def test_cumulative_exporter_is_differenced_not_double_counted(start_processor, otel, attrs):
    p = start_processor()
    mp = otel.metrics(p, temporality="cumulative")
    meter = mp.get_meter("t")
    counter = meter.create_counter("ml.feature.missing")
    hist = meter.create_histogram("ml.feature.value")
    a = attrs("x", **{"ml.missing.kind": "absent"})
    all_values = []
    for batch in range(3):
        counter.add(10, a)
        vals = np.random.default_rng(batch).lognormal(batch, 1, 300)  # the OTel SDK refuses negatives
        all_values.extend(vals)
        for v in vals:
            hist.record(float(v), attrs("x"))
        assert mp.force_flush()
    body = web(p, "/api/models/churn/features/x").json()
    assert body["missing"] == {"absent": 30}
    assert body["count"] == 900
    assert body["sum"] == pytest.approx(float(np.sum(all_values)))
    assert body["min"] == pytest.approx(min(all_values))
    assert body["max"] == pytest.approx(max(all_values))


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_spans_and_latency_histograms_feed_the_calls_endpoint(start_processor, otel, attrs, transport):
    p = start_processor()
    tracer = otel.tracer(p, transport).get_tracer("t")
    for i in range(6):
        with tracer.start_as_current_span("predict churn") as span:
            span.set_attributes(attrs(**{"ml.request.id": f"r{i}", "ml.batch.size": 1}))
            if i % 3 == 0:
                span.set_attribute("error.type", "ValueError")
                span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span("GET /health"):
        pass  # not a prediction span: ignored, counted
    mp = otel.metrics(p, transport)
    dur = mp.get_meter("t").create_histogram("ml.inference.duration", unit="s")
    for v in (0.01, 0.02, 0.2):
        dur.record(v, attrs())
    dur.record(0.5, attrs(**{"error.type": "TimeoutError"}))
    assert mp.force_flush()

    body = web(p, "/api/models/churn/calls").json()
    assert body["spans"]["total"] == 6
    assert body["spans"]["errors"] == 2
    assert body["spans"]["errors_by_type"] == {"ValueError": 2}
    assert body["spans"]["duration_seconds"]["sketch"]["count"] == 6
    assert body["calls"] == 4 and body["errors"] == 1
    assert body["errors_by_type"] == {"TimeoutError": 1}
    assert sum(h["count"] for h in body["duration"].values()) == 4
    metrics = web(p, "/metrics").text
    assert 'infersight_processor_ignored_total{kind="span"} 1' in metrics


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_prediction_and_feedback_logs_are_joined_by_request_id(start_processor, otel, attrs, transport):
    p = start_processor()
    logger = otel.logger(p, transport).get_logger("t")
    for i in range(3):
        logger.emit(
            event_name="ml.prediction",
            attributes=attrs(
                **{
                    "ml.request.id": f"req-{i}",
                    "ml.inputs": json.dumps({"age": 30 + i}),
                    "ml.outputs": json.dumps([0.7]),
                }
            ),
        )
    logger.emit(event_name="ml.feedback", attributes=attrs(**{"ml.request.id": "req-1", "ml.feedback.actual": "1"}))
    # Feedback may come before its prediction: it waits (within the TTL) and joins later.
    logger.emit(event_name="ml.feedback", attributes=attrs(**{"ml.request.id": "req-9", "ml.feedback.actual": "0"}))
    logger.emit(
        attributes=attrs(
            **{
                "event.name": "ml.prediction",
                "ml.request.id": "req-9",
                "ml.inputs": '{"age": 9',
                "ml.payload.truncated": True,
            }
        )
    )
    logger.emit(body="an ordinary application log line")

    rows = web(p, "/api/models/churn/predictions").json()["predictions"]
    by_id = {r["request_id"]: r for r in rows}
    assert set(by_id) == {"req-0", "req-1", "req-2", "req-9"}
    assert by_id["req-1"]["actual"] == 1 and by_id["req-0"]["actual"] is None
    assert by_id["req-0"]["inputs"] == {"age": 30}
    assert by_id["req-9"]["actual"] == 0 and by_id["req-9"]["truncated"] is True
    assert by_id["req-9"]["inputs"] == '{"age": 9'  # truncated JSON is returned as sent
    labelled = web(p, "/api/models/churn/predictions", labelled="true").json()["predictions"]
    assert {r["request_id"] for r in labelled} == {"req-1", "req-9"}
    assert web(p, "/api/models/churn").json()["predictions"] == {"logged": 4, "labelled": 2, "feedback_waiting": 0}


def test_otlp_json_with_hex_ids_and_gzip(start_processor):
    p = start_processor()
    now = time.time_ns()
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "predict m",
                                "kind": 2,
                                "startTimeUnixNano": str(now - 5_000_000),
                                "endTimeUnixNano": str(now),
                                "status": {"code": 2},
                                "attributes": [
                                    {"key": "ml.model.name", "value": {"stringValue": "m"}},
                                    {"key": "error.type", "value": {"stringValue": "KeyError"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    r = httpx.post(
        f"http://127.0.0.1:{p.ports['otlp_http']}/v1/traces",
        content=gzip.compress(json.dumps(doc).encode()),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    body = web(p, "/api/models/m/calls").json()
    assert body["spans"] == {**body["spans"], "total": 1, "errors": 1, "errors_by_type": {"KeyError": 1}}


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_compressed_exports_arrive(start_processor, otel, attrs, transport):
    p = start_processor()
    comp = HttpCompression.Gzip if transport == "http" else GrpcCompression.Gzip
    mp = otel.metrics(p, transport, compression=comp)
    mp.get_meter("t").create_counter("ml.schema.violations").add(2, attrs("age", **{"ml.schema.rule": "max"}))
    assert mp.force_flush()
    assert web(p, "/api/models/churn/features/age").json()["violations"] == {"max": 2}


def test_points_without_a_model_are_rejected_with_partial_success_and_unknown_metrics_ignored(start_processor):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    p = start_processor()
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    now = time.time_ns()
    good = sm.metrics.add(name="ml.feature.missing")
    good.sum.aggregation_temporality = 1
    good.sum.is_monotonic = True
    dp = good.sum.data_points.add(as_int=3, start_time_unix_nano=now - 10**9, time_unix_nano=now)
    for k, v in {"ml.model.name": "m", "ml.feature.name": "f", "ml.missing.kind": "null"}.items():
        dp.attributes.add(key=k).value.string_value = v
    bad = sm.metrics.add(name="ml.feature.missing")
    bad.sum.aggregation_temporality = 1
    bad.sum.data_points.add(as_int=1, time_unix_nano=now)  # no model, no feature
    other = sm.metrics.add(name="http.server.duration")
    other.gauge.data_points.add(as_double=1.0, time_unix_nano=now)
    r = httpx.post(
        f"http://127.0.0.1:{p.ports['otlp_http']}/v1/metrics",
        content=req.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200
    resp = ExportMetricsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_data_points == 1
    assert "ml.model.name" in resp.partial_success.error_message
    assert web(p, "/api/models/m/features/f").json()["missing"] == {"null": 3}
    assert 'infersight_processor_ignored_total{kind="metric"} 1' in web(p, "/metrics").text


def test_api_answers_bad_queries_with_400_and_unknown_models_with_404(start_processor):
    p = start_processor()
    r = web(p, "/api/models/m/features/f", start="yesterday")
    assert r.status_code == 400 and "start='yesterday'" in r.json()["error"]
    r = web(p, "/api/models/m/features/f", start="100", end="50")
    assert r.status_code == 400 and "[start, end)" in r.json()["error"]
    assert web(p, "/api/models/nope").status_code == 404
    assert web(p, "/healthz").json()["status"] == "ok"
