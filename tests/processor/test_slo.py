"""SLOs: burn rates from stored windows equal a hand computation, the workbook's alerts fire
as they should (a fast burn pages, a slow burn reaches a ticket and not a page, two failed
requests of three never page, a quiet service burning for days still tickets, a silent model
raises no-data), latency SLIs read from histograms within their documented bound, and the
config is refused with the key and value named.

These run on a real store with the production window sizes (60 s base, 1 h and 1 d roll-ups)
and the SRE workbook's default alert windows over a 30-day period; the instrumented app on
the wire is in test_slo_e2e.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infersight.feature_stats import DURATION_BOUNDS
from infersight.processor.alerts import AlertManager, parse_alerts
from infersight.processor.config import ConfigError, load_config
from infersight.processor.evaluate.loop import EvaluationLoop
from infersight.processor.evaluate.outputs import FindingOutputs
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.slo.api import slo_body
from infersight.processor.slo.burn import judge
from infersight.processor.slo.evaluator import SLOEvaluator
from infersight.processor.slo.settings import parse_slo
from infersight.processor.slo.sli import ModelCounts, latency_good
from infersight.processor.storage import MODEL, WindowKey, WriteBatch, open_storage
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats

BASE = 60
DAY = 86400
T0 = 1_800_000_000 - 1_800_000_000 % DAY  # a day boundary


def _window(total: int, bad: int, *, fast: float = 0.02, slow: float = 3.0, invalid: int = 0) -> WindowStats:
    """``total`` calls of which ``bad`` failed (error.type set) and were slow; the rest fast."""
    values = np.array([fast] * (total - bad) + [slow] * bad)
    bounds = tuple(DURATION_BOUNDS)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1).astype(np.int64)
    ws = WindowStats(
        histograms={"duration": ExplicitHistogram(bounds, counts, total, float(values.sum()), fast, slow)},
    )
    if total:
        ws.add_count("calls", "total", total)
    if bad:
        ws.add_count("calls", "error", bad)
    if invalid:
        ws.add_count("calls", "invalid", invalid)
    return ws


def _write(store: Any, model: str, series: Sequence[tuple[int, int]], start: int, version: str = "1") -> None:
    """One base window per (total, bad) pair from ``start`` on."""
    batch = WriteBatch()
    for i, (total, bad) in enumerate(series):
        if total:
            batch.windows[WindowKey(model, version, MODEL, "", BASE, start + i * BASE)] = _window(total, bad)
    store.write(batch)
    store.compact(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    st = open_storage(f"sqlite:///{tmp_path}/slo.db", (BASE, 3600, DAY))
    yield st
    st.close()


def _availability(**kw: Any) -> Any:
    return parse_slo(
        {"objectives": [{"name": "up", "model": "m", "kind": "availability", "objective": "99.9%"}], **kw}, "slo"
    )


def test_burn_rates_equal_a_hand_computation_from_the_same_counts(store):
    rng = np.random.default_rng(3)
    minutes = 3 * DAY // BASE
    totals = rng.integers(0, 40, minutes)
    bads = rng.binomial(totals, 0.004)
    _write(store, "m", list(zip(totals.tolist(), bads.tolist())), T0)
    settings = _availability()
    ev = SLOEvaluator(settings)
    at = T0 + minutes * BASE
    ev.run(store, store.models()[0], now=at)
    body = slo_body(store, settings, model="m")
    (status,) = [s for s in body["slos"] if s["version"] == ""]
    assert status["at"] == at
    for label, seconds in (
        ("5m", 300),
        ("30m", 1800),
        ("1h", 3600),
        ("2h", 7200),
        ("6h", 21600),
        ("1d", DAY),
        ("3d", 3 * DAY),
    ):
        n = seconds // BASE
        total, bad = int(totals[-n:].sum()), int(bads[-n:].sum())
        hand = (bad / total) / 0.001 if total else 0.0
        assert status["burn_rates"][label] == pytest.approx(hand, rel=1e-12), label
        assert status["windows"][label]["total"] == total and status["windows"][label]["bad"] == bad
    # the period (30 d) holds the three days written: budget = 0.1% of those calls
    allowed = 0.001 * int(totals.sum())
    assert status["error_budget"]["remaining"] == pytest.approx(1 - int(bads.sum()) / allowed, rel=1e-12)
    assert status["sli"] == pytest.approx(1 - bads.sum() / totals.sum(), rel=1e-12)


def _statuses(store: Any, settings: Any, at: int) -> dict[str, Any]:
    counts = ModelCounts(store, "m")
    o = settings.objectives[0]
    st = judge(o, settings, lambda s, e: counts.counts(o, "", s, e), at=at, last_event=at)
    return {a.name: a for a in st.alerts} | {"_status": st}


def test_a_fast_burn_pages_and_a_slow_burn_reaches_a_ticket_and_not_a_page(store):
    settings = _availability()
    # a day of healthy traffic (100 calls/min, 0.05% errors), then 20 minutes at 5% errors: 50x
    healthy = [(100, 0 if i % 20 else 1) for i in range(DAY // BASE)]
    _write(store, "m", healthy + [(100, 5)] * 20, T0)
    fast = _statuses(store, settings, T0 + DAY + 20 * BASE)
    assert fast["fast"].firing and fast["fast"].severity == "page"
    assert fast["fast"].factor == pytest.approx(14.4)
    assert fast["_status"].status == "breach"

    # another model: 27 healthy days (one window an hour holding the hour's 6,000 calls), then
    # 3 days at twice the budget's pace (0.2% errors): only the slowest ticket
    history = WriteBatch()
    for h in range(27 * 24):
        history.windows[WindowKey("s", "1", MODEL, "", BASE, T0 + h * 3600)] = _window(6000, 0)
    store.write(history)
    _write(store, "s", [(100, 0 if i % 5 else 1) for i in range(3 * DAY // BASE)], T0 + 27 * DAY)
    counts = ModelCounts(store, "s")
    o = parse_slo({"objectives": [{"name": "up", "model": "s", "kind": "availability", "objective": "99.9%"}]}, "slo")
    obj = o.objectives[0]
    at = T0 + 30 * DAY
    st = judge(obj, o, lambda s, e: counts.counts(obj, "", s, e), at=at, last_event=at)
    firing = {a.name for a in st.alerts if a.firing}
    assert firing == {"slowest"}, firing
    assert not st.firing("page") and [a.name for a in st.firing("ticket")] == ["slowest"]
    assert st.windows[3 * DAY].burn_rate == pytest.approx(2.0)
    # at a 2x pace, 30 days of budget last 15 days: 3 of them spent, so 12 days remain
    assert st.budget_remaining == pytest.approx(0.8, rel=1e-9)
    assert st.time_to_exhaustion == pytest.approx((1 - 3 / 15) * 30 * DAY / 2.0, rel=1e-9)


def test_two_failed_requests_of_three_in_an_hour_never_page(store):
    settings = _availability()
    # a nearly idle service: three calls in the last hour, two of them failed
    _write(store, "m", [(0, 0)] * 55 + [(1, 1), (0, 0), (1, 1), (0, 0), (1, 0)], T0)
    st = _statuses(store, settings, T0 + 60 * BASE)
    assert not any(a.firing for a in st["_status"].alerts)
    assert st["fast"].guarded and st["medium"].guarded  # the rates alone would have paged
    assert st["_status"].status == "warning"


def test_a_quiet_service_burning_its_budget_for_days_still_reaches_a_ticket(store):
    settings = _availability()
    # one call every ten minutes, every 20th failing (5%: 50x the budget) for eight days: an
    # hour holds 6 calls (never a page: under min_events), the 3-day window 432
    minutes = 8 * DAY // BASE
    rows = [(1, 1 if (i // 10) % 20 == 19 else 0) if i % 10 == 0 else (0, 0) for i in range(minutes)]
    _write(store, "m", rows, T0)
    st = _statuses(store, settings, T0 + minutes * BASE)
    assert st["fast"].long is not None and st["fast"].long.total == 6
    assert not st["fast"].firing and not st["medium"].firing
    assert st["slowest"].firing and st["slowest"].severity == "ticket"
    assert st["budget"].firing  # eight days at 50x spent the 30-day budget 13 times over
    assert st["_status"].status == "breach" and not st["_status"].firing("page")


def test_a_model_that_stops_reporting_raises_no_data_and_alerts(store):
    settings = _availability(no_data="10m")
    _write(store, "m", [(50, 0)] * 120, T0)
    mgr = AlertManager(parse_alerts({}, "alerts"), store)
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1h"]}}, "models"),
        parse_evaluation({"lateness": "0s"}, "evaluation"),
        evaluators=[],
        on_findings=mgr.observe,
        slo=SLOEvaluator(settings),
        outputs=FindingOutputs(),
    )
    end = T0 + 120 * BASE
    for minute in range(0, 16):
        loop.run_once(now=end + minute * BASE)
    incidents = mgr.incidents("open", model="m")
    assert [i["policy"] for i in incidents] == ["slo-no-data"], incidents
    inc = incidents[0]
    assert inc["severity"] == "page" and inc["subjects"] == ["up/no_data"]
    assert "stopped reporting" in inc["check_first"]
    # traffic comes back: the no-data incident resolves
    _write(store, "m", [(50, 0)] * 3, end + 16 * BASE)
    loop.run_once(now=end + 20 * BASE)
    assert mgr.incidents("open", model="m") == []
    assert [i["policy"] for i in mgr.incidents("resolved", model="m")] == ["slo-no-data"]
    mgr.close()


def test_page_opens_then_resolves_through_the_alert_engine_and_metrics_show_the_burn(store):
    settings = _availability()
    mgr = AlertManager(parse_alerts({}, "alerts"), store)
    outputs = FindingOutputs()
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1h"]}}, "models"),
        parse_evaluation({"lateness": "0s"}, "evaluation"),
        evaluators=[],
        on_findings=mgr.observe,
        slo=SLOEvaluator(settings),
        outputs=outputs,
    )
    _write(store, "m", [(100, 0)] * 60, T0)
    loop.run_once(now=T0 + 60 * BASE)
    assert mgr.incidents("open") == []
    # ten minutes at 10% errors (100x): a page opens (the 6 h/30 min alert first: 1 h of
    # history is too little for the fast one), and a ticket; one notice each
    _write(store, "m", [(100, 10)] * 10, T0 + 60 * BASE)
    loop.run_once(now=T0 + 70 * BASE)
    opened = {i["policy"]: i for i in mgr.incidents("open")}
    assert set(opened) == {"slo-page", "slo-ticket"}
    inc = opened["slo-page"]
    assert inc["severity"] == "page" and inc["cause_class"] == "service"
    assert "failing" in inc["check_first"]
    assert [h["event"] for h in inc["history"]].count("notified") == 1
    top = inc["top"][0]
    assert top["subject"] == "up/page" and "burning" in top["text"] and "over 6h" in top["text"]
    prom = outputs.render_prometheus()
    assert (
        'ml_slo_burn_rate{ml_model_name="m",ml_model_version="",ml_slo_kind="availability",ml_slo_name="up",ml_slo_window="5m"'
        in prom
    )
    assert (
        'ml_slo_alert_firing{ml_model_name="m",ml_model_version="",ml_slo_kind="availability",ml_slo_name="up",ml_slo_severity="page"'
        in prom
    )
    # healthy again: the page resolves as soon as its short window (30 m) burns under 6x: with
    # k healthy minutes it holds (30 - k) x 10 bad of 3,000 calls, under 0.6% from k = 29 on
    _write(store, "m", [(100, 0)] * 28, T0 + 70 * BASE)
    loop.run_once(now=T0 + 98 * BASE)
    assert {i["policy"] for i in mgr.incidents("open")} == {"slo-page", "slo-ticket"}
    _write(store, "m", [(100, 0)], T0 + 98 * BASE)
    loop.run_once(now=T0 + 99 * BASE)
    assert [i["policy"] for i in mgr.incidents("open")] == ["slo-ticket"]  # the 6 h window still burns
    assert [i["policy"] for i in mgr.incidents("resolved")] == ["slo-page"]
    mgr.close()


def test_per_version_objectives_see_a_canary_burn_the_average_hides(store):
    settings = _availability()
    _write(store, "m", [(950, 0)] * 60, T0, version="1")
    _write(store, "m", [(50, 5)] * 60, T0, version="2")  # the canary fails 10%
    ev = SLOEvaluator(settings)
    ev.run(store, store.models()[0], now=T0 + 60 * BASE)
    body = {s["version"]: s for s in slo_body(store, settings, model="m")["slos"]}
    assert set(body) == {"", "1", "2"}
    assert body["2"]["burn_rates"]["1h"] == pytest.approx(100.0)
    assert body["1"]["burn_rates"]["1h"] == 0.0
    assert body[""]["burn_rates"]["1h"] == pytest.approx(5.0)

    def paging(b: dict[str, Any]) -> list[str]:
        return [a["name"] for a in b["alerts"] if a["firing"] and a["severity"] == "page"]

    assert paging(body["2"]) == ["fast", "medium"] and paging(body[""]) == [] and paging(body["1"]) == []


# -- SLIs ------------------------------------------------------------------------------------


def test_latency_sli_from_histograms_is_exact_at_bounds_and_within_one_bucket_between():
    rng = np.random.default_rng(8)
    values = rng.lognormal(-2.5, 1.0, 20_000)
    bounds = tuple(DURATION_BOUNDS)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1).astype(np.int64)
    h = ExplicitHistogram(bounds, counts, values.size, float(values.sum()), float(values.min()), float(values.max()))
    ws = WindowStats(histograms={"duration": h})
    for thr in (0.05, 0.1, 0.25, 2.0):
        assert latency_good(ws, thr) == (values <= thr).sum()  # a bound: exact
    for thr in (0.04, 0.15, 0.6):
        k = int(np.searchsorted(bounds, thr))
        err = abs(latency_good(ws, thr) - (values <= thr).sum())
        assert err <= counts[k]  # within the straddled bucket's count
    # an exponential histogram (another producer): error within one ~0.1%-wide bucket
    sk = ExpHistogram.from_values(values)
    ws2 = WindowStats(sketches={"duration": sk})
    for thr in (0.04, 0.15, 0.6, 2.0):
        exact = int((values <= thr).sum())
        lo, hi = thr / (1 + 2**-sk.scale), thr * (1 + 2**-sk.scale)
        in_bucket = int(((values > lo) & (values <= hi)).sum())
        assert abs(latency_good(ws2, thr) - exact) <= max(in_bucket, 1)
    # above the last bound: known good only through max
    assert latency_good(ws, 20.0) == (values <= 20.0).sum() == values.size


def test_data_quality_and_model_quality_slis(store):
    batch = WriteBatch()
    batch.windows[WindowKey("m", "1", MODEL, "", BASE, T0)] = _window(200, 0, invalid=3)
    store.write(batch)
    s = parse_slo(
        {"objectives": [{"name": "valid", "model": "m", "kind": "data_quality", "objective": "99.5%"}]}, "slo"
    )
    counts = ModelCounts(store, "m")
    assert counts.counts(s.objectives[0], "", T0, T0 + BASE) == (197.0, 200.0)
    from infersight.processor.storage.base import Record

    store.put_records(
        [
            Record(
                "quality_window", f"m|1||300|{T0}", "m", T0, {"task": "classification", "labelled": 80, "correct": 72}
            ),
            Record(
                "quality_window", f"m|2||300|{T0}", "m", T0, {"task": "classification", "labelled": 20, "correct": 20}
            ),
            Record(
                "quality_window", f"m|||300|{T0}", "m", T0, {"task": "classification", "labelled": 100, "correct": 92}
            ),
            Record(
                "quality_window",
                f"m|1|region=eu|300|{T0}",
                "m",
                T0,
                {"task": "classification", "labelled": 8, "correct": 1},
            ),
        ]
    )
    q = parse_slo({"objectives": [{"name": "acc", "model": "m", "kind": "model_quality", "objective": 0.9}]}, "slo")
    qc = ModelCounts(store, "m", quality_size=300)
    o = q.objectives[0]
    assert qc.counts(o, "", T0, T0 + 300) == (92.0, 100.0)
    assert qc.counts(o, "1", T0, T0 + 300) == (72.0, 80.0)
    assert qc.counts(o, "", T0, T0 + 299) == (0.0, 0.0)  # the window is not whole yet


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"objectives": [{"name": "x", "kind": "speed", "objective": 0.9}]},
            "slo.objectives[0].kind: 'speed' is not one of",
        ),
        ({"objectives": [{"name": "x", "kind": "latency", "objective": 0.9}]}, "slo.objectives[0].threshold: missing"),
        (
            {"objectives": [{"name": "x", "kind": "availability", "objective": "101%"}]},
            "slo.objectives[0].objective: '101%'",
        ),
        ({"objectives": [{"name": "x", "kind": "availability", "objective": 0.9, "threshold": "1s"}]}, "only latency"),
        (
            {"alerts": [{"name": "a", "severity": "page", "long": "5m", "short": "1h", "budget": "2%"}]},
            "must be shorter",
        ),
        (
            {"alerts": [{"name": "a", "severity": "loud", "long": "1h", "short": "5m", "budget": "2%"}]},
            "'loud' is not one of",
        ),
        ({"alerts": [{"name": "a", "severity": "page", "long": "1h", "short": "5m"}]}, "exactly one of budget"),
        (
            {"period": "1d", "objectives": [{"name": "x", "kind": "availability", "objective": 0.9}]},
            "longer than the period",
        ),
        ({"objectives": [{"name": "x", "kind": "availability", "objective": 0.9}] * 2}, "appears twice"),
        ({"bogus": 1}, "slo.bogus: unknown key"),
    ],
)
def test_invalid_slo_config_is_refused_naming_key_and_value(body, message):
    with pytest.raises(ConfigError) as err:
        parse_slo(body, "slo")
    assert message in str(err.value)


def test_config_file_with_slos_loads_and_checks_windows_against_the_storage_window(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text(
        "storage:\n  window: 60s\nslo:\n  period: 28d\n  objectives:\n"
        "    - {name: p99, model: churn, kind: latency, threshold: 2s, objective: 99%}\n"
    )
    cfg = load_config(good)
    s = cfg.sections["slo"]
    assert s.period == 28 * DAY and s.objectives[0].threshold == 2.0
    assert s.factor(s.alerts[0]) == pytest.approx(0.02 * 28 * 24)  # 13.44 for 28 days
    bad = tmp_path / "q.yaml"
    bad.write_text(
        "storage:\n  window: 60s\nslo:\n  alerts:\n    - {name: f, severity: page, long: 1h, short: 90s, budget: 2%}\n"
        "  objectives:\n    - {name: up, kind: availability, objective: 99%}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(bad) in str(err.value) and "90s is not a whole number of storage windows" in str(err.value)


def test_factors_follow_budget_period_and_window():
    s = parse_slo(
        {
            "period": "7d",
            "alerts": [
                {"name": "f", "severity": "page", "long": "1h", "short": "5m", "budget": "2%"},
                {"name": "x", "severity": "ticket", "long": "1d", "short": "2h", "factor": 2.5},
            ],
        },
        "slo",
    )
    assert s.factor(s.alerts[0]) == pytest.approx(0.02 * 7 * 24) and s.factor(s.alerts[1]) == 2.5
    assert math.isclose(parse_slo({}, "slo").factor(parse_slo({}, "slo").alerts[0]), 14.4)
