"""End to end on loopback, windows and the period shrunk: an app monitored with
``@infersight.monitor`` exports real OTLP to a started processor configured with a latency SLO.
A latency regression triggers the fast-burn page, which resolves once the short window is
healthy again; a model that stops sending raises the no-data page. Everything is read the way
an operator reads it: ``/api/alerts``, ``/api/slo`` and ``/metrics`` over HTTP.

Time is real (the SDK stamps metric points at export): each step makes its calls inside one
1-second storage window, flushes (acknowledged means committed), waits for the window to
close and runs one evaluation pass at that instant.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

import infersight
from support.seconds import at_second_start, evaluate_when_closed

CONFIG = """
storage:
  window: 1s
evaluation:
  interval: 1h          # passes are run by the test, one per closed window
  lateness: 0s
slo:
  period: 120s
  min_events: 10
  no_data: 3s
  alerts:
    - {name: fast, severity: page, long: 6s, short: 2s, budget: 10%}     # 0.1 x 120 / 6 = 2x
    - {name: slow, severity: ticket, long: 60s, short: 10s, budget: 25%}  # 0.25 x 120 / 60 = 0.5x
  objectives:
    - {name: p-under-50ms, model: e2e-slo, kind: latency, threshold: 50ms, objective: 80%}
    - {name: no-errors, model: e2e-slo, kind: availability, objective: 99%}
"""


@pytest.fixture
def processor(start_processor: Any) -> Any:
    return start_processor(config=CONFIG)


def _step(p: Any, predict: Any, calls: int, slow: bool) -> float:
    """Make ``calls`` calls inside the current second, export them, wait for the second to
    close, run one evaluation pass; return the instant judged."""
    at_second_start()  # so the export lands in this second's window
    for _ in range(calls):
        predict({"x": 1.0, "slow": slow})
    assert infersight.flush()
    return evaluate_when_closed(p)


def _open(web: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{web}/api/alerts", params={"model": "e2e-slo", "state": "open"})
    assert r.status_code == 200, r.text
    return {i["policy"] + ":" + i["subjects"][0]: i for i in r.json()["incidents"]}


def test_latency_regression_pages_then_resolves_and_silence_raises_no_data(processor):
    p = processor
    web = f"http://127.0.0.1:{p.ports['web']}"
    infersight.configure(
        endpoint=f"http://127.0.0.1:{p.ports['otlp_grpc']}",
        protocol="grpc",
        log_output="none",
        metric_export_interval=3600,
        service_name="slo-e2e",
    )

    @infersight.monitor(model="e2e-slo", version="1")
    def predict(row: dict[str, Any]) -> float:
        if row["slow"]:
            time.sleep(0.06)  # the regression: over the 50 ms objective
        return row["x"] * 2

    for _ in range(4):  # healthy traffic
        _step(p, predict, 10, slow=False)
    assert _open(web) == {}

    paged_after = None
    for i in range(6):  # the regression
        _step(p, predict, 10, slow=True)
        if "slo-page:p-under-50ms/page" in _open(web):
            paged_after = i + 1
            break
    # 6 s window over 2x (40% slow) needs three slow seconds of six; the 2 s window one
    assert paged_after is not None and paged_after <= 4, paged_after
    page = _open(web)["slo-page:p-under-50ms/page"]
    assert page["severity"] == "page" and page["cause_class"] == "service"
    assert "slower than the objective" in page["check_first"]
    assert "p-under-50ms/page: burning" in page["top"][0]["text"]
    assert not any(k.startswith("slo-page:no-errors") for k in _open(web))  # no errors: availability fine

    status = {s["slo"]: s for s in httpx.get(f"{web}/api/slo", params={"model": "e2e-slo"}).json()["slos"]}
    lat = status["p-under-50ms"]
    assert lat["status"] == "breach" and lat["burn_rates"]["6s"] >= 2.0
    assert lat["windows"]["2s"]["bad"] == lat["windows"]["2s"]["total"] > 0  # every slow call is bad
    assert lat["error_budget"]["remaining"] < 1.0
    assert status["no-errors"]["burn_rates"]["6s"] == 0.0
    metrics = httpx.get(f"{web}/metrics").text
    assert (
        'ml_slo_alert_firing{ml_model_name="e2e-slo",ml_model_version="",ml_slo_kind="latency",ml_slo_name="p-under-50ms",ml_slo_severity="page",ml_window_size="1"} 1'
        in metrics
    )
    assert "ml_slo_error_budget_remaining{" in metrics and "ml_slo_sli{" in metrics

    resolved_after = None
    last_end = 0.0
    for i in range(6):  # healthy again
        last_end = _step(p, predict, 10, slow=False)
        if "slo-page:p-under-50ms/page" not in _open(web):
            resolved_after = i + 1
            break
    # the page's short window (2 s) is clean after two healthy seconds
    assert resolved_after is not None and resolved_after <= 3, resolved_after
    r = httpx.get(f"{web}/api/alerts", params={"model": "e2e-slo", "state": "resolved"}).json()
    assert [i["policy"] for i in r["incidents"] if i["policy"] == "slo-page"] == ["slo-page"]

    # the model stops sending: after no_data (3 s) of silence the no-data page opens
    deadline = time.time() + 8
    noticed = None
    while time.time() < deadline:
        boundary = evaluate_when_closed(p)
        if "slo-no-data:p-under-50ms/no_data" in _open(web):
            noticed = boundary
            break
    opened = _open(web)
    assert "slo-no-data:p-under-50ms/no_data" in opened, opened
    nd = opened["slo-no-data:p-under-50ms/no_data"]
    assert nd["severity"] == "page" and "stopped reporting" in nd["check_first"]
    # judged at the first window end at least 3 s after the last window with calls
    assert noticed is not None and noticed - last_end in (3.0, 4.0), (noticed, last_end)
