"""The Prometheus metric names infersight's code exports, derived from the code itself.

* the SDK: a monitored call (and a FastAPI request through the middleware) is exported to a
  loopback OTLP receiver, and each metric that arrives is named the way the collector's
  ``prometheus`` exporter names it (dots to underscores, the unit as a suffix, ``_total`` on
  counters, ``_bucket``/``_sum``/``_count`` on histograms);
* the processor: one finding of every kind rendered by ``FindingOutputs.render_prometheus``
  (the same names it pushes over OTLP), and its own counters in ``selfmetrics``.
"""

from __future__ import annotations

import re
from typing import Any

_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}


def prometheus_names(name: str, unit: str, kind: str, monotonic: bool = False) -> set[str]:
    """What the collector's prometheus exporter (default translation) shows for one OTLP metric.

    >>> sorted(prometheus_names("ml.inference.duration", "s", "histogram"))
    ['ml_inference_duration_seconds_bucket', 'ml_inference_duration_seconds_count', 'ml_inference_duration_seconds_sum']
    """
    base = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    suffix = _UNIT_SUFFIX.get(unit, "")
    if suffix and not base.endswith("_" + suffix):
        base += "_" + suffix
    if unit == "1" and kind == "gauge" and not base.endswith("_ratio"):
        base += "_ratio"
    if kind == "histogram":
        return {base + "_bucket", base + "_sum", base + "_count"}
    if kind == "exponential_histogram":
        return {base}  # a native histogram: one name
    if kind == "sum" and monotonic:
        return {base if base.endswith("_total") else base + "_total"}
    return {base}


def sdk_metric_names() -> set[str]:
    """Run the SDK against a loopback OTLP receiver and name what it exported."""
    import numpy as np
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    import infersight
    from infersight.integrations.fastapi import instrument_app
    from infersight.stats.reference import Reference
    from support.otlp_sink import OtlpSink

    names: set[str] = set()
    with OtlpSink() as sink:
        infersight.configure(
            endpoint=sink.http_endpoint,
            protocol="http/protobuf",
            service_name="known-metrics",
            log_output="none",
            metric_export_interval=3600,
            max_attribute_sets=2,  # the second model below is over the limit: ml.telemetry.dropped
        )
        try:
            schema = Reference.from_data({"x": np.linspace(0.0, 1.0, 200), "c": np.array(["red", "blue"] * 100)})

            @infersight.monitor(model="known", version="1", reference=schema)
            def predict(rows: list[dict[str, Any]]) -> list[str | None]:
                if rows[0].get("boom"):
                    raise ValueError("boom")
                return ["a" if isinstance(r.get("x"), float) and r["x"] > 0 else None for r in rows]

            @infersight.monitor(model="other", version="1")
            def other(row: dict[str, Any]) -> float:
                return 1.0

            predict([{"x": 1.0, "c": "red"}, {"x": float("nan"), "c": None}, {"x": "text", "c": 3}])
            try:
                predict([{"boom": True, "x": 1.0}])
            except ValueError:
                pass
            for i in range(3):
                other({"y": float(i)})
            app = FastAPI()
            instrument_app(app)

            @app.get("/ping")
            def ping() -> dict[str, bool]:
                return {"ok": True}

            with TestClient(app) as client:
                assert client.get("/ping").status_code == 200
            assert infersight.flush()
        finally:
            infersight.configure(exporter="none", log_output="none")
        for req in sink.metrics:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        monotonic = kind == "sum" and m.sum.is_monotonic
                        names |= prometheus_names(m.name, m.unit, kind or "", monotonic)
    return names


def processor_metric_names() -> set[str]:
    """Every name the processor renders on /metrics (and pushes over OTLP)."""
    from infersight.processor.evaluate.findings import Finding
    from infersight.processor.evaluate.outputs import FindingOutputs
    from infersight.processor.quality.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
    from infersight.processor.selfmetrics import _HELP

    def f(kind: str, subject: str, **kw: Any) -> Finding:
        return Finding("m", "1", 60, 0, kind, subject, "breach", 0.5, 0.1, kw.pop("p", None), **kw)

    findings = [
        f("drift", "x", method="ks", p=1e-6),
        f("drift", "output:score", method="psi"),
        f("data_quality", "x", method="missing"),
        f("age", ""),
        f(
            "slo",
            "lat",
            details={
                "sli": 0.9,
                "objective": 0.99,
                "budget_remaining": 0.5,
                "time_to_exhaustion": 100.0,
                "burn_rates": {"1h": 2.0},
                "sli_kind": "latency",
            },
        ),
        f("slo", "lat/page", details={"sli_kind": "latency"}),
    ]
    findings += [f("quality", q) for q in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, "coverage")]
    out = FindingOutputs()
    out.update(findings)
    names = {ln.split("{")[0] for ln in out.render_prometheus().splitlines() if ln and not ln.startswith("#")}
    return names | set(_HELP)
