"""End to end on loopback: an app monitored with ``@infersight.monitor`` exports real OTLP to a
started processor at the default payload sample rate (1%); labels follow minutes of processor
time later through ``infersight.record_feedback``. The quality of a window is scikit-learn's on
*every* call's pairs (not the 1% whose payload was logged), the API answers it, and a label
source that stopped shows as coverage falling.

The SDK's clocks (the outcome's and the feedback record's timestamps) are replaced by an
explicit processor-time clock, so "five minutes later" takes no time and windows are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from sklearn.metrics import accuracy_score, mean_absolute_error
from starlette.applications import Starlette

import infersight
from infersight.processor.evaluate.findings import EvaluationContext
from infersight.processor.quality.api import quality_routes
from infersight.processor.quality.evaluator import QualityEvaluator
from infersight.processor.quality.settings import parse_quality

W = 60  # the evaluation window, shrunk for the test


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(routes)`` → base URL of a Starlette app on a loopback port."""
    servers: list[tuple[_Quiet, threading.Thread]] = []

    def start(routes: list[Any]) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = _Quiet(uvicorn.Config(Starlette(routes=routes), log_level="warning", lifespan="off"))
        t = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        t.start()
        while not server.started:
            t.join(0.01)
        servers.append((server, t))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, t in servers:
        server.should_exit = True
        t.join(10)


class Clock:
    def __init__(self, t_ns: int) -> None:
        self.t = t_ns

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> tuple[Clock, Clock]:
    """(outcome clock, feedback clock): what the SDK stamps calls and labels with."""
    calls, labels = Clock(0), Clock(0)
    # the modules (the package's ``infersight.monitor`` is the decorator)
    monkeypatch.setattr(importlib.import_module("infersight._monitor"), "_time_ns", calls)
    monkeypatch.setattr(importlib.import_module("infersight.logs"), "time", types.SimpleNamespace(time_ns=labels))
    return calls, labels


def _configure(p: Any) -> None:
    infersight.configure(
        endpoint=f"http://127.0.0.1:{p.ports['otlp_grpc']}",
        protocol="grpc",
        log_output="none",
        metric_export_interval=3600,
        service_name="quality-e2e",
    )  # payload_sample_rate stays at its default, 1%


def test_window_accuracy_is_sklearns_on_every_call_and_coverage_falls_when_labels_stop(start_processor, clocks, serve):
    calls, labels = clocks
    p = start_processor()
    _configure(p)
    rng = np.random.default_rng(11)
    t0 = (int(time.time()) // W - 20) * W  # processor time, window-aligned

    @infersight.monitor(model="churn-q", version="7")
    def predict(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return (x[:, 0] > 0.5).astype(int)
        return int(x["score"] > 0.5)

    # window 0: 1,900 one-row calls and 25 batches of 4 rows = 2,000 pairs, every one labelled
    truth: list[int] = []
    preds: list[int] = []
    sent: list[tuple[str, Any, int]] = []
    for i in range(1900):
        calls.t = int((t0 + i * W / 2000) * 10**9)
        x = float(rng.random())
        y = int(x + rng.normal(0, 0.2) > 0.5)
        pred = predict({"score": x})
        sent.append((infersight.last_request_id(), y, calls.t))
        truth.append(y)
        preds.append(pred)
    for j in range(25):
        calls.t = int((t0 + W - 1) * 10**9 + j)
        xb = rng.random((4, 2))
        yb = [int(v) for v in (xb[:, 0] + rng.normal(0, 0.2, 4) > 0.5)]
        pb = predict(xb)
        sent.append((infersight.last_request_id(), yb, calls.t))
        truth.extend(yb)
        preds.extend(int(v) for v in pb)
    # windows 1 and 2: 500 calls each; the label source stops 30% into window 1
    later: list[tuple[str, int, int]] = []
    for w in (1, 2):
        for i in range(500):
            calls.t = int((t0 + w * W + i * W / 500) * 10**9)
            x = float(rng.random())
            predict({"score": x})
            later.append((infersight.last_request_id(), int(x > 0.5), calls.t))
    assert infersight.flush()

    # labels, five minutes of processor time after each prediction
    for rid, y, t in sent:
        labels.t = t + 300 * 10**9
        infersight.record_feedback(rid, y, model="churn-q", version="7")
    for rid, y, t in later[:150]:
        labels.t = t + 300 * 10**9
        infersight.record_feedback(rid, y, model="churn-q", version="7")
    assert infersight.flush()

    store = p.storage
    assert store.prediction_counts("churn-q")["logged"] < 100  # payload logs stay sampled (about 1%)
    expected = accuracy_score(truth, preds)

    settings = parse_quality({"min_labelled": 50, "models": {"churn-q": {"min_coverage": 0.9}}}, "quality")
    ev = QualityEvaluator(settings)
    now = t0 + 3 * W + 600
    found = ev.evaluate(EvaluationContext(store, "churn-q", W, t0, now))
    by_subject = {f.subject: f for f in found if f.kind == "quality" and f.version == "7"}
    acc = by_subject["accuracy"]
    assert acc.n_current == 2000 and acc.statistic == pytest.approx(expected, abs=1e-12)
    assert acc.status == "ok"
    cov = by_subject["coverage"]
    assert cov.statistic == 1.0 and cov.status == "ok"
    delay = cov.details["label_delay_seconds"]
    assert delay["p50"] == pytest.approx(300.0) and delay["count"] == 1925
    age = [f for f in found if f.kind == "age"]
    assert [a.version for a in age] == ["7"] and age[0].statistic >= now - t0 - W

    w2 = ev.evaluate(EvaluationContext(store, "churn-q", W, t0 + 2 * W, now))
    cov2 = next(f for f in w2 if f.subject == "coverage")
    assert cov2.statistic == 0.0 and cov2.status == "breach"

    base = serve(quality_routes(store, settings))
    r = httpx.get(f"{base}/api/models/churn-q/quality", params={"start": t0, "end": t0 + W})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert body["labelled"] == 2000 and body["calls"] == 1925 and body["coverage"] == 1.0
    assert body["label_delay_seconds"]["p50"] == pytest.approx(300.0)
    r = httpx.get(f"{base}/api/models/churn-q/quality", params={"start": t0, "end": t0 + 3 * W, "window": W})
    coverage = [w["coverage"] for w in r.json()["windows"]]
    assert coverage == [1.0, pytest.approx(0.3), 0.0]  # the label source stopped: coverage falls
    assert httpx.get(f"{base}/api/models/churn-q/quality", params={"window": "x"}).status_code == 400
    assert httpx.get(f"{base}/api/models/nobody/quality").status_code == 404


def test_two_versions_side_by_side_with_a_verdict(start_processor, clocks):
    calls, labels = clocks
    p = start_processor()
    _configure(p)
    rng = np.random.default_rng(5)
    t0 = (int(time.time()) // W - 20) * W

    def model(version: str, noise: float) -> Any:
        @infersight.monitor(model="price-q", version=version)
        def predict(row: dict[str, float]) -> float:
            return 3.0 * row["x"] + float(rng.normal(0, noise))

        return predict

    old, new = model("1", 0.5), model("2", 2.0)
    pairs: dict[str, tuple[list[float], list[float]]] = {"1": ([], []), "2": ([], [])}
    sent = []
    calls.t = int((t0 - 5 * W) * 10**9)  # version 1 served before the window: it is the incumbent
    old({"x": 0.0})
    for i in range(1200):
        calls.t = int((t0 + i * W / 1200) * 10**9)
        version, fn = ("2", new) if i % 4 == 0 else ("1", old)
        x = float(rng.random() * 10)
        yhat = fn({"x": x})
        y = 3.0 * x
        sent.append((infersight.last_request_id(), y, calls.t, version))
        pairs[version][0].append(y)
        pairs[version][1].append(yhat)
    assert infersight.flush()
    for rid, y, t, version in sent:
        labels.t = t + 120 * 10**9
        infersight.record_feedback(rid, y, model="price-q", version=version)
    assert infersight.flush()

    ev = QualityEvaluator(parse_quality({"min_labelled": 100}, "quality"))
    found = ev.evaluate(EvaluationContext(p.storage, "price-q", W, t0, t0 + 3 * W))
    mae = {f.version: f.statistic for f in found if f.kind == "quality" and f.subject == "mae"}
    for v in ("1", "2"):
        assert mae[v] == pytest.approx(mean_absolute_error(*pairs[v]), rel=1e-12)
    versions = {f.subject: f for f in found if f.kind == "version"}
    assert versions["quality:mae"].version == "2" and versions["quality:mae"].status == "breach"
    assert versions["quality:mae"].details["baseline_version"] == "1"
    verdict = versions["verdict"]
    assert verdict.status == "breach" and "quality:mae" in verdict.details["worse"]
    assert verdict.cause_class == "model_version"
    assert versions["predictions"].method == "ks"
    # (latency side by side reads the stored duration windows, stamped with the real export
    # time rather than this test's clock: test_quality.py covers it on written windows)
