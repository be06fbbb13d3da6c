"""The real Prometheus binary (Debian's package; scripts/install-prometheus.sh) scrapes a real
processor's /metrics on loopback after an evaluation pass that found drift, and the drift and SLO
series come back through Prometheus' HTTP query API; every query of the Grafana dashboard is
accepted by that Prometheus' PromQL parser.

Time is real (the SDK stamps metric points at export): each batch is sent inside one 1-second
storage window, then one evaluation pass runs at the instant the last window closed. Prometheus
scrapes every second; the test gives it 20 seconds at most.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from collector.test_collector_config import dashboard_queries

import infersight
from infersight.processor.config import load_config
from infersight.processor.service import Processor
from infersight.stats.reference import Reference

PROMETHEUS = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
)
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (scripts/install-prometheus.sh installs it)"
)
MODEL = "scraped"
CONFIG = f"""
storage:
  window: 1s
  rollups: [60s]
models:
  "*":
    windows: [1s]
evaluation:
  enabled: false   # the test runs the pass at the instant the windows closed
  lateness: 0s
slo:
  period: 60s
  min_events: 5
  alerts:
    - {{name: fast, severity: page, long: 4s, short: 2s, budget: 10%}}
  objectives:
    - {{name: no-errors, model: {MODEL}, kind: availability, objective: 99%}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processor]:
    """A processor whose last evaluation pass found feature ``a`` drifted (and judged the SLO)."""
    tmp = tmp_path_factory.mktemp("scrape")
    (tmp / "processor.yaml").write_text(CONFIG)
    cfg = load_config(
        tmp / "processor.yaml",
        {"db": f"sqlite:///{tmp}/p.db", "otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "web": "127.0.0.1:0"},
    )
    p = Processor(cfg)
    p.start()
    try:
        rng = np.random.default_rng(16)
        ref = Reference.from_data({"a": rng.normal(0, 1, 4000), "b": rng.normal(5, 1, 4000)}, model=MODEL)
        web = f"http://127.0.0.1:{p.ports['web']}"
        r = httpx.post(f"{web}/api/models/{MODEL}/reference", json=ref.to_dict(), timeout=30)
        assert r.status_code == 201, r.text
        infersight.configure(
            endpoint=f"http://127.0.0.1:{p.ports['otlp_http']}",
            protocol="http/protobuf",
            service_name="scrape-test",
            log_output="none",
            metric_export_interval=3600,
        )

        @infersight.monitor(model=MODEL, version="1")
        def predict(rows: list[dict[str, float]]) -> list[float]:
            return [r["a"] + r["b"] for r in rows]

        boundary = 0.0
        for _ in range(3):
            time.sleep(1.02 - time.time() % 1)  # just after a window boundary
            a, b = rng.normal(2.0, 1, 300), rng.normal(5, 1, 300)  # a moved by two standard deviations
            predict([{"a": float(x), "b": float(y)} for x, y in zip(a, b)])
            assert infersight.flush()
            boundary = float(int(time.time()) + 1)
        infersight.configure(exporter="none", log_output="none")
        time.sleep(max(0.0, boundary - time.time()) + 0.05)
        made = p.evaluation.run_once(now=boundary)
        assert any(f.kind == "drift" and f.subject == "a" and f.status == "breach" for f in made), made
        yield p
    finally:
        infersight.configure(exporter="none", log_output="none")
        p.stop()


@pytest.fixture(scope="module")
def prometheus(drifted: Processor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on a loopback port scraping the processor every second."""
    assert PROMETHEUS is not None
    tmp = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "processor", "static_configs": [{"targets": [f"127.0.0.1:{drifted.ports['web']}"]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_series(base: str, promql: str, deadline: float) -> list[dict[str, Any]]:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = query(base, promql)
            if got:
                return got
        except (httpx.HTTPError, AssertionError) as exc:  # not up yet
            last = exc
        time.sleep(0.25)
    pytest.fail(f"Prometheus had no series for {promql} within the deadline (last error: {last})")


def test_prometheus_scrapes_the_drift_and_slo_series(prometheus: str) -> None:
    deadline = time.monotonic() + 20
    drift = wait_for_series(prometheus, f'ml_drift_score{{ml_model_name="{MODEL}"}}', deadline)
    # the all-versions series (ml.model.version ""): Prometheus drops labels with empty values
    by_feature = {s["metric"].get("ml_feature_name"): s for s in drift if "ml_model_version" not in s["metric"]}
    assert {"a", "b"} <= set(by_feature), [s["metric"] for s in drift]
    detected = query(prometheus, f'ml_drift_detected{{ml_model_name="{MODEL}", ml_model_version=""}}')
    flags = {s["metric"]["ml_feature_name"]: float(s["value"][1]) for s in detected if "ml_feature_name" in s["metric"]}
    assert flags["a"] == 1.0 and flags["b"] == 0.0, flags
    score_a = float(by_feature["a"]["value"][1])
    threshold_a = float(query(prometheus, f'ml_drift_threshold{{ml_model_name="{MODEL}", ml_model_version="", ml_feature_name="a", ml_drift_method="{by_feature["a"]["metric"]["ml_drift_method"]}"}}')[0]["value"][1])  # fmt: skip
    assert score_a > threshold_a
    assert by_feature["a"]["metric"]["job"] == "processor"
    sli = wait_for_series(prometheus, f'ml_slo_sli{{ml_model_name="{MODEL}", ml_slo_name="no-errors"}}', deadline)
    assert all(float(s["value"][1]) == 1.0 for s in sli), sli  # no call failed
    budget = query(prometheus, f'ml_slo_error_budget_remaining{{ml_model_name="{MODEL}"}}')
    assert budget and all(float(s["value"][1]) == 1.0 for s in budget), budget
    burn = query(prometheus, f'ml_slo_burn_rate{{ml_model_name="{MODEL}"}}')
    assert {s["metric"]["ml_slo_window"] for s in burn} >= {"4s", "2s"}, burn
    self_metrics = query(prometheus, 'infersight_processor_points_total{signal="metrics"}')
    assert self_metrics and float(self_metrics[0]["value"][1]) > 0


def test_prometheus_parses_every_query_of_the_grafana_dashboard(prometheus: str) -> None:
    wait_for_series(prometheus, "up", time.monotonic() + 20)
    for expr in dashboard_queries():
        if expr.startswith("label_values("):
            continue  # a Grafana function, not PromQL
        promql = expr.replace("$model", ".*").replace("$__rate_interval", "30s")
        query(prometheus, promql)  # a parse error is a 400, which query() refuses
    heat = query(prometheus, f'max by (ml_feature_name) (ml_drift_score{{ml_model_name=~"{MODEL}"}} / ml_drift_threshold{{ml_model_name=~"{MODEL}"}})')  # fmt: skip
    ratio = {s["metric"]["ml_feature_name"]: float(s["value"][1]) for s in heat}
    assert ratio["a"] >= 1.0 > ratio["b"], ratio
