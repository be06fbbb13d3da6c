"""What a configured SDK really sends over OTLP (gRPC and HTTP) to a loopback receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import infersight
from support.otlp_sink import OtlpSink, attrs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def sink():
    with OtlpSink() as s:
        yield s


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_signals_on_the_wire(sink, protocol, model_name):
    sink.clear()
    endpoint = sink.grpc_endpoint if protocol == "grpc" else sink.http_endpoint
    infersight.configure(
        endpoint=endpoint,
        protocol=protocol,
        service_name="wire-test",
        environment="ci",
        log_output="none",
        payload_sample_rate=1.0,
        redact=["ssn"],
    )

    @infersight.monitor(model=model_name, version="4")
    def predict(rows):
        return [0.5] * len(rows)

    rng = np.random.default_rng(1)
    batch = [{"income": float(v), "ssn": "123-45-6789", "tenure": 3.0} for v in rng.lognormal(3, 1, 40)]
    batch[5]["income"] = float("nan")
    batch[6]["income"] = float("nan")
    predict(batch)
    predict({"income": 12.5, "ssn": "987-65-4321", "tenure": float("nan")})
    assert infersight.flush()

    spans = [(res, s) for res, s in sink.spans() if s.name == f"predict {model_name}"]
    assert len(spans) == 2
    res, span = spans[0]
    assert res["service.name"] == "wire-test" and res["deployment.environment.name"] == "ci"
    assert res["process.pid"] == os.getpid() and "host.name" in res
    a = attrs(span.attributes)
    assert (a["ml.model.name"], a["ml.model.version"], a["ml.batch.size"]) == (model_name, "4", 40)

    logs = [(r, rec) for r, rec in sink.log_records() if attrs(rec.attributes).get("ml.model.name") == model_name]
    assert len(logs) == 2
    log_attrs = attrs(logs[0][1].attributes)
    # the request ID on the span equals the one on the log record, and they share the trace
    assert log_attrs["ml.request.id"] == a["ml.request.id"]
    assert logs[0][1].trace_id == span.trace_id and logs[0][1].span_id == span.span_id

    points = [
        p
        for _, _, p in sink.metric_points("ml.feature.value")
        if attrs(p.attributes).get("ml.model.name") == model_name
    ]
    by_feature = {attrs(p.attributes)["ml.feature.name"]: p for p in points}
    income = by_feature["income"]
    assert income.count == 39  # 38 finite from the batch + 1 from the single row
    assert income.zero_count + sum(income.positive.bucket_counts) + sum(income.negative.bucket_counts) == 39
    assert by_feature["tenure"].count == 40

    missing = {
        (attrs(p.attributes)["ml.feature.name"], attrs(p.attributes)["ml.missing.kind"]): p.as_int
        for _, _, p in sink.metric_points("ml.feature.missing")
        if attrs(p.attributes).get("ml.model.name") == model_name
    }
    assert missing == {("income", "nan"): 2, ("tenure", "nan"): 1}

    # redacted fields are absent from everything on the wire
    raw = b"".join(m.SerializeToString() for m in sink.traces + sink.metrics + sink.logs)
    assert b"123-45-6789" not in raw and b"987-65-4321" not in raw
    assert "ssn" not in by_feature
    assert json.loads(log_attrs["ml.inputs"])[0]["ssn"] == "[REDACTED]"


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_fork_after_configure_exports_from_parent_and_child_without_duplicates(sink):
    """gunicorn-style pre-fork: configure in the parent, then fork; both processes export, the
    totals are exact (nothing duplicated from the parent's pending data, nothing lost)."""
    sink.clear()
    proc = _run(
        """
        import os, sys, infersight
        infersight.configure(log_output="none", metric_export_interval=3600)

        @infersight.monitor(model="forked", version="1")
        def predict(row):
            return 1.0

        for i in range(7):
            predict({"x": float(i)})          # pending in the parent at fork time
        pid = os.fork()
        if pid == 0:
            for i in range(5):
                predict({"x": 100.0 + i})
            infersight.flush()
            os._exit(0)
        for i in range(3):
            predict({"x": 200.0 + i})
        os.waitpid(pid, 0)
        infersight.flush()
        """,
        {"INFERSIGHT_ENDPOINT": sink.grpc_endpoint, "INFERSIGHT_PROTOCOL": "grpc"},
    )
    assert proc.returncode == 0, proc.stderr
    points = [
        (res, p)
        for res, _, p in sink.metric_points("ml.feature.value")
        if attrs(p.attributes).get("ml.model.name") == "forked"
    ]
    by_pid: dict[int, int] = {}
    for res, p in points:
        by_pid[res["process.pid"]] = by_pid.get(res["process.pid"], 0) + p.count
    assert sum(by_pid.values()) == 15
    assert sorted(by_pid.values()) == [5, 10]  # child: its own 5; parent: 7 before + 3 after
    spans = [s for _, s in sink.spans() if s.name == "predict forked"]
    assert len(spans) == 15
    assert len({s.span_id for s in spans}) == 15


def test_spans_still_queued_at_exit_are_exported(sink):
    """No flush: the spans of the last calls are in infersight's span queue when the process
    exits, and the exit-time shutdown sends them before the exporter closes."""
    sink.clear()
    proc = _run(
        """
        import infersight
        infersight.configure(log_output="none")

        @infersight.monitor(model="at-exit", version="1")
        def predict(row):
            return 1.0

        for i in range(4):
            predict({"x": float(i)})
        """,
        {"INFERSIGHT_ENDPOINT": sink.grpc_endpoint, "INFERSIGHT_PROTOCOL": "grpc"},
    )
    assert proc.returncode == 0, proc.stderr
    assert len([s for _, s in sink.spans() if s.name == "predict at-exit"]) == 4


def test_existing_providers_are_used_not_replaced(sink):
    """With opentelemetry-instrument style global SDK providers, infersight uses them, and its
    sketches ride along through the application's own metric exporter."""
    sink.clear()
    proc = _run(
        """
        from opentelemetry import trace, metrics
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        import os
        ep = os.environ["SINK"]
        res = Resource.create({"service.name": "app-owned"})
        tp = TracerProvider(resource=res)
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=ep, insecure=True)))
        trace.set_tracer_provider(tp)
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=ep, insecure=True), export_interval_millis=3_600_000)
        metrics.set_meter_provider(MeterProvider(resource=res, metric_readers=[reader]))

        import infersight
        infersight.configure(service_name="ignored-when-app-owns-providers", log_output="none", exporter="none")
        assert trace.get_tracer_provider() is tp

        @infersight.monitor(model="hosted")
        def predict(row):
            return 2.0

        with trace.get_tracer("app").start_as_current_span("handler"):
            predict({"x": 1.0})
        infersight.flush()
        """,
        {"SINK": sink.grpc_endpoint},
    )
    assert proc.returncode == 0, proc.stderr
    spans = {s.name: (res, s) for res, s in sink.spans()}
    res, predict_span = spans["predict hosted"]
    assert res["service.name"] == "app-owned"
    assert predict_span.parent_span_id == spans["handler"][1].span_id
    values = [
        (r, p)
        for r, _, p in sink.metric_points("ml.feature.value")
        if attrs(p.attributes).get("ml.model.name") == "hosted"
    ]
    assert len(values) == 1 and values[0][1].count == 1
    assert values[0][0]["service.name"] == "app-owned"


def test_configure_twice_swaps_exporters_without_duplicates(model_name):
    with OtlpSink() as first, OtlpSink() as second:
        infersight.configure(endpoint=first.grpc_endpoint, log_output="none")

        @infersight.monitor(model=model_name)
        def predict(row):
            return 1.0

        predict({"x": 1.0})
        infersight.configure(endpoint=second.grpc_endpoint, log_output="none")
        predict({"x": 2.0})
        infersight.flush()
        n_first = [s for _, s in first.spans() if s.name == f"predict {model_name}"]
        n_second = [s for _, s in second.spans() if s.name == f"predict {model_name}"]
        # the first span was flushed to the first endpoint on reconfigure, the second only to the new one
        assert (len(n_first), len(n_second)) == (1, 1)


def test_configure_after_shutdown_exports_again(sink):
    """A test fixture's pattern: configure, shutdown, configure again. The stopped runtime's
    providers cannot export any more (the global ones cannot be replaced either), so the
    second configure builds a new runtime: spans, metric points and payload logs arrive. The
    shutdown against a dead collector returns within its bound (False: not everything went
    out), not after the exporters' retries."""
    sink.clear()
    proc = _run(
        """
        import os
        import infersight

        @infersight.monitor(model="revived", version="1")
        def predict(row):
            return 1.0

        infersight.configure(endpoint="http://127.0.0.1:9", protocol="grpc", log_output="none")  # nothing listens
        predict({"x": 1.0})
        # the collector is down: the wait ends at the bound, before the stop could finish
        assert infersight.shutdown(timeout_seconds=1.0) is False
        infersight.configure(endpoint=os.environ["SINK"], protocol="grpc", log_output="none", payload_sample_rate=1.0)
        for i in range(3):
            predict({"x": float(i)})
        assert infersight.flush() is True
        """,
        {"SINK": sink.grpc_endpoint},
    )
    assert proc.returncode == 0, proc.stderr
    assert "span_after_shutdown" not in proc.stderr
    assert len([s for _, s in sink.spans() if s.name == "predict revived"]) == 3
    points = [
        p for _, _, p in sink.metric_points("ml.feature.value") if attrs(p.attributes).get("ml.model.name") == "revived"
    ]
    assert sum(p.count for p in points) == 3
    assert len([r for _, r in sink.log_records() if attrs(r.attributes).get("event.name") == "ml.prediction"]) == 3


def test_system_metrics_ride_along(sink):
    """Process CPU and memory come from opentelemetry-instrumentation-system-metrics."""
    sink.clear()
    proc = _run(
        """
        import infersight
        infersight.configure(log_output="none", system_metrics=True, metric_export_interval=3600)
        infersight.monitor(model="sys")(lambda row: 1.0)({"x": 1.0})
        infersight.flush()
        """,
        {"INFERSIGHT_ENDPOINT": sink.grpc_endpoint},
    )
    assert proc.returncode == 0, proc.stderr
    memory = sink.metric_points("process.memory.usage")
    assert memory and memory[0][2].as_int > 0
    assert sink.metric_points("process.cpu.time")
    assert [
        p for _, _, p in sink.metric_points("ml.feature.value") if attrs(p.attributes).get("ml.model.name") == "sys"
    ]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_integers_otlp_cannot_carry_are_left_out_and_every_span_arrives(
    sink, protocol, model_name, caplog, monkeypatch
):
    """An app sets attributes OTLP has no int_value for (beyond signed 64 bits, also inside an
    array) on some predict spans of one export batch: those attributes are left out, logged
    once and counted; every span of the batch arrives with its other attributes, and the
    values at the edge of the range arrive exactly."""
    from opentelemetry import trace

    from infersight import _otlp_encode

    monkeypatch.setattr(_otlp_encode, "_invalid_logged", False)  # logged once per process: start afresh
    sink.clear()
    endpoint = sink.grpc_endpoint if protocol == "grpc" else sink.http_endpoint
    infersight.configure(
        endpoint=endpoint, protocol=protocol, service_name="wire-ints", log_output="none", metric_export_interval=3600
    )
    odd = {
        "big": 2**63,
        "huge": 2**70,
        "below": -(2**63) - 1,
        "far": -(2**64),
        "ints": (1, 2**64),
        "ok": 7,
        "lowest": -(2**63),
        "highest": 2**63 - 1,
        "flag": True,
        "np": np.int64(-5),
        "npu": np.uint64(2**64 - 1),
    }

    @infersight.monitor(model=model_name, version="1")
    def predict(row):
        span = trace.get_current_span()
        if row["i"] % 3 == 0:
            span.set_attributes(odd)
        span.set_attribute("row", row["i"])
        return 1.0

    calls = 600  # over one export batch (512)
    with caplog.at_level("WARNING", logger="infersight"):
        for i in range(calls):
            predict({"i": i})
        assert infersight.flush()
    spans = [s for _, s in sink.spans() if s.name == f"predict {model_name}"]
    assert sorted(attrs(s.attributes)["row"] for s in spans) == list(range(calls))
    for s in spans:
        a = attrs(s.attributes)
        assert not {"big", "huge", "below", "far", "ints"} & a.keys()
        if a["row"] % 3 == 0:
            assert (a["ok"], a["lowest"], a["highest"], a["flag"]) == (7, -(2**63), 2**63 - 1, True)
            assert (a["np"], a["npu"]) == ("-5", str(2**64 - 1))  # as the OTel SDK cleans numpy scalars
            assert s.dropped_attributes_count == 0
    left_out = [r for r in caplog.records if "left out of the exported span" in r.getMessage()]
    assert len(left_out) == 1
    dropped = sum(
        p.as_int
        for _, _, p in sink.metric_points("ml.telemetry.dropped")
        if attrs(p.attributes).get("ml.telemetry.reason") == "span_attribute_invalid"
    )
    assert dropped == 5 * 200  # five attributes on each of 200 spans
