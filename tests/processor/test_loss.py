"""Loss and double-counting: concurrent exporters, kill -9 mid-ingest, replicas merged.

Every exporter is a real OTel SDK OTLP exporter wrapped so the test knows exactly which exports
the processor acknowledged; the processor's stored totals are compared against those.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from infersight.stats.sketch import ExpHistogram

DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}


class Acknowledged(MetricExporter):
    """Delegates to a real OTLP exporter and tallies what each *successful* export carried."""

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(preferred_temporality=DELTA)
        self.inner = inner
        self.acked: Tally[str] = Tally()
        self.sent: Tally[str] = Tally()
        self.acked_values = 0
        self.lock = threading.Lock()

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kw: Any) -> MetricExportResult:
        labels: Tally[str] = Tally()
        values = 0
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for dp in m.data.data_points:
                        if m.name == "ml.prediction.class":
                            labels[str(dp.attributes["ml.prediction.label"])] += int(dp.value)
                        elif m.name == "ml.prediction.value":
                            values += dp.count
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis)
        with self.lock:
            self.sent.update(labels)
            if result == MetricExportResult.SUCCESS:
                self.acked.update(labels)
                self.acked_values += values
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kw: Any) -> None:
        self.inner.shutdown()


def exporter_for(transport: str, ports: dict[str, int]) -> Acknowledged:
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        inner = OTLPMetricExporter(
            endpoint=f"127.0.0.1:{ports['otlp_grpc']}", insecure=True, timeout=10, preferred_temporality=DELTA
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        inner = OTLPMetricExporter(
            endpoint=f"http://127.0.0.1:{ports['otlp_http']}/v1/metrics", timeout=10, preferred_temporality=DELTA
        )
    return Acknowledged(inner)


def provider(exporters: list[MetricExporter], service: str) -> MeterProvider:
    readers = [PeriodicExportingMetricReader(e, export_interval_millis=10**9) for e in exporters]
    return MeterProvider(
        metric_readers=readers,
        resource=Resource.create({"service.name": service}),
        views=[View(instrument_name="ml.prediction.value", aggregation=ExponentialBucketHistogramAggregation())],
    )


def out_attrs(label: str, model: str = "m") -> dict[str, Any]:
    return {"ml.model.name": model, "ml.model.version": "1", "ml.output.name": "y", "ml.prediction.label": label}


def stored(web_port: int, model: str = "m") -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{web_port}/api/models/{model}/outputs/y", timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.slow
def test_ten_concurrent_exporters_for_30_seconds_store_exactly_what_was_acknowledged(start_processor):
    p = start_processor(window="1s")
    stop = threading.Event()
    exporters = [exporter_for("grpc" if i % 2 else "http", p.ports) for i in range(10)]
    errors: list[BaseException] = []

    def run(i: int, exp: Acknowledged) -> None:
        mp = provider([exp], f"svc-{i}")
        meter = mp.get_meter("load")
        cls = meter.create_counter("ml.prediction.class")
        val = meter.create_histogram("ml.prediction.value")
        rng = np.random.default_rng(i)
        try:
            while not stop.is_set():
                for _ in range(20):
                    cls.add(int(rng.integers(1, 5)), out_attrs(f"e{i}-{rng.integers(0, 3)}"))
                    val.record(float(rng.uniform(0.01, 1.0)), out_attrs("x"))
                mp.force_flush()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            mp.shutdown()

    threads = [threading.Thread(target=run, args=(i, e)) for i, e in enumerate(exporters)]
    for t in threads:
        t.start()
    stop.wait(30)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors
    acked: Tally[str] = Tally()
    for e in exporters:
        acked.update(e.acked)
    body = stored(p.ports["web"])
    assert sum(acked.values()) > 0
    assert Tally({k: int(v) for k, v in body["classes"].items()}) == acked
    assert body["numeric_count"] == sum(e.acked_values for e in exporters)
    sent: Tally[str] = Tally()
    for e in exporters:
        sent.update(e.sent)
    assert sent == acked  # nothing was refused under this load either


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def spawn(db: str, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "infersight.processor",
        "--db",
        db,
        "--window",
        "1s",
        "--otlp-grpc",
        f"127.0.0.1:{ports['otlp_grpc']}",
        "--otlp-http",
        f"127.0.0.1:{ports['otlp_http']}",
        "--web",
        f"127.0.0.1:{ports['web']}",
    ]
    proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"processor exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{ports['web']}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"processor did not come up: {log.read_text()}")


def test_kill_9_during_ingest_loses_no_acknowledged_point_and_counts_none_twice(tmp_path):
    names = ["otlp_grpc", "otlp_http", "web"]
    ports = dict(zip(names, _free_ports(3)))
    db = f"sqlite:///{tmp_path}/kill.db"
    log = tmp_path / "processor.log"
    proc = spawn(db, ports, log)
    exporters = [exporter_for("grpc" if i % 2 else "http", ports) for i in range(4)]
    stop = threading.Event()

    def run(i: int, exp: Acknowledged) -> None:
        mp = provider([exp], f"svc-{i}")
        cls = mp.get_meter("kill").create_counter("ml.prediction.class")
        seq = 0
        while not stop.is_set():
            # One distinct label per export: a label stored twice would show as a doubled value.
            seq += 1
            cls.add(seq % 7 + 1, out_attrs(f"e{i}-{seq}"))
            mp.force_flush()
        mp.shutdown()

    threads = [threading.Thread(target=run, args=(i, e), daemon=True) for i, e in enumerate(exporters)]
    for t in threads:
        t.start()

    def acked_total():
        return sum(len(e.acked) for e in exporters)

    try:
        deadline = time.monotonic() + 60
        while acked_total() < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        before_restart = acked_total()
        proc = spawn(db, ports, log)
        deadline = time.monotonic() + 60
        while acked_total() < before_restart + 40 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        classes = {k: int(v) for k, v in stored(ports["web"])["classes"].items()}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    acked: dict[str, int] = {}
    sent: dict[str, int] = {}
    for e in exporters:
        acked.update(e.acked)
        sent.update(e.sent)
    assert acked_total() >= before_restart + 40 and before_restart >= 40
    missing = {k: v for k, v in acked.items() if classes.get(k) != v}
    assert not missing, f"acknowledged but not stored (or stored wrongly): {missing}"
    assert set(classes) <= set(sent)
    doubled = {k: v for k, v in classes.items() if v != sent[k]}
    assert not doubled, f"counted more than once: {doubled}"


def test_sigterm_commits_what_was_queued_and_exits_cleanly(tmp_path):
    ports = dict(zip(["otlp_grpc", "otlp_http", "web"], _free_ports(3)))
    log = tmp_path / "p.log"
    proc = spawn(f"sqlite:///{tmp_path}/t.db", ports, log)
    exp = exporter_for("http", ports)
    mp = provider([exp], "svc")
    mp.get_meter("t").create_counter("ml.prediction.class").add(3, out_attrs("before-stop"))
    mp.force_flush()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert "infersight processor stopped" in log.read_text()
    proc = spawn(f"sqlite:///{tmp_path}/t.db", ports, log)
    try:
        assert stored(ports["web"])["classes"] == {"before-stop": 3}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        mp.shutdown()


@pytest.mark.parametrize("layout", ["separate SQLite stores merged", "one shared PostgreSQL store"])
def test_two_replicas_each_given_half_the_services_equal_one_given_everything(start_processor, layout, request):
    if layout == "one shared PostgreSQL store":
        new_db = request.getfixturevalue("pg_database")
        shared = new_db()
        replicas = [start_processor(db=shared), start_processor(db=shared)]
        single = start_processor(db=new_db())
    else:
        replicas = [start_processor(), start_processor()]
        single = start_processor()
    rng = np.random.default_rng(42)
    providers = []
    for i, svc in enumerate(["api", "batch", "search", "ranker"]):
        # One provider, two readers: the replica routed by service.name and the single processor
        # receive the same deltas.
        mp = provider(
            [exporter_for("grpc" if i % 2 else "http", replicas[i % 2].ports), exporter_for("http", single.ports)], svc
        )
        providers.append(mp)
        meter = mp.get_meter("t")
        cls, val = meter.create_counter("ml.prediction.class"), meter.create_histogram("ml.prediction.value")
        for _ in range(3):
            for v in rng.gamma(2.0, 1.5 + i, 200):
                val.record(float(v), out_attrs("x"))
                cls.add(1, out_attrs(f"c{int(v) % 4}"))
            mp.force_flush()
    for mp in providers:
        mp.shutdown()
    whole = stored(single.ports["web"])
    if layout == "one shared PostgreSQL store":
        parts = [stored(replicas[0].ports["web"])]
    else:
        parts = [stored(r.ports["web"]) for r in replicas]
    merged_sketch = ExpHistogram.merge_all(ExpHistogram.from_dict(p["sketch"]) for p in parts)
    assert merged_sketch == ExpHistogram.from_dict(whole["sketch"])
    merged_classes: Tally[str] = Tally()
    for p in parts:
        merged_classes.update({k: int(v) for k, v in p["classes"].items()})
    assert merged_classes == Tally({k: int(v) for k, v in whole["classes"].items()})
    assert sum(merged_classes.values()) == 4 * 3 * 200
