"""Jaeger and the processor with no collector: one SDK configuration, made of the standard
per-signal variables, sends traces to one OTLP endpoint (Jaeger's) and metrics and logs to
another (the processor's). Two loopback OTLP receivers stand in for the two services."""

from __future__ import annotations

from typing import Any

import pytest

import infersight
from support.otlp_sink import OtlpSink, attrs


def _run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for k in (
        "INFERSIGHT_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "INFERSIGHT_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    infersight.configure(service_name="split-signals", log_output="none", payload_sample_rate=1.0)
    try:

        @infersight.monitor(model="split", version="1")
        def predict(row: dict[str, Any]) -> float:
            return float(row["x"]) * 2

        for i in range(5):
            predict({"x": float(i)})
        assert infersight.flush()
    finally:
        infersight.configure(exporter="none", log_output="none")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_per_signal_endpoints_send_traces_to_one_place_and_metrics_and_logs_to_another(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    with OtlpSink() as jaeger, OtlpSink() as processor:
        if protocol == "grpc":
            env = {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": jaeger.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": processor.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": processor.grpc_endpoint,
            }
        else:
            env = {
                "INFERSIGHT_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{jaeger.http_endpoint}/v1/traces",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{processor.http_endpoint}/v1/metrics",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{processor.http_endpoint}/v1/logs",
            }
        _run(monkeypatch, env)
        assert jaeger.received["traces"] >= 1 and jaeger.received["metrics"] == jaeger.received["logs"] == 0
        assert processor.received["traces"] == 0
        assert processor.metric_points("ml.inference.duration") and processor.log_records()
        spans = [a for a in (attrs(s.attributes) for _, s in jaeger.spans()) if a.get("ml.model.name") == "split"]
        assert len(spans) == 5 and all(a.get("ml.request.id") for a in spans)


def test_per_signal_endpoints_win_over_the_general_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpSink() as jaeger, OtlpSink() as processor, OtlpSink() as general:
        _run(
            monkeypatch,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": general.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": jaeger.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": processor.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": processor.grpc_endpoint,
            },
        )
        assert jaeger.received["traces"] >= 1 and processor.received["metrics"] >= 1
        assert general.received["traces"] == 0 and general.received["metrics"] == 0
