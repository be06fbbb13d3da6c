"""The request view's store (kept spans and log records) on both engines, what ingest keeps,
the dashboard's JSON and its token handling, over HTTP on loopback (no browser: the browser
tests are in test_dashboard_browser.py)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from infersight.processor.config import ConfigError
from infersight.processor.dashboard.routes import latency_percentiles
from infersight.processor.dashboard.settings import parse_dashboard
from infersight.processor.ingest.keep import keep_items
from infersight.processor.ingest.points import LogPoint, SpanPoint
from infersight.processor.storage import open_storage
from infersight.processor.storage.base import Prediction, TraceItem, WriteBatch
from infersight.stats.windows import ExplicitHistogram, WindowStats

NS = 10**9


def _item(trace: str, item: str, t: float, flagged: bool = False, rid: str = "", kind: str = "span") -> TraceItem:
    return TraceItem(trace, item, kind, "m", rid, int(t * NS), flagged, {"name": item, "n": [1, 2]})


def test_trace_items_round_trip_and_expire_by_flag_age_and_cap(store_url: str) -> None:
    st = open_storage(store_url, (60,))
    try:
        now = 100_000.0
        t_old, t_flag, t_new = "a" * 32, "b" * 32, "c" * 32
        st.write(
            WriteBatch(
                trace_items=[
                    _item(t_old, "s1", now - 3600, rid="r-old"),
                    _item(t_old, "s2", now - 3599),
                    _item(t_flag, "s1", now - 3600, rid="r-flag"),
                    _item(t_new, "s1", now - 10, rid="r-new"),
                    _item(t_new, "s2", now - 9),
                ]
            )
        )
        # a flag arriving later (the payload log of the request) keeps its whole trace
        st.write(WriteBatch(trace_items=[_item(t_flag, "log:x", now - 3598, True, "r-flag", "log")]))
        got = st.trace_items(request_id="r-flag")
        assert [(i.item_id, i.flagged, i.body) for i in got] == [
            ("s1", True, {"name": "s1", "n": [1, 2]}),
            ("log:x", True, {"name": "log:x", "n": [1, 2]}),
        ]
        assert [i.item_id for i in st.trace_items(trace_id=t_old)] == ["s1", "s2"]
        # unflagged older than recent (15 min) go; the flagged trace and the new one stay
        assert st.expire_trace_items(now, recent=900, retention=86400, max_items=100) == 2
        assert st.trace_items(trace_id=t_old) == []
        assert len(st.trace_items(trace_id=t_flag)) == 2 and len(st.trace_items(trace_id=t_new)) == 2
        # over the cap: the oldest unflagged go first (the new trace's first span)
        assert st.expire_trace_items(now, recent=900, retention=86400, max_items=3) == 1
        assert [i.item_id for i in st.trace_items(trace_id=t_new)] == ["s2"]
        assert len(st.trace_items(trace_id=t_flag)) == 2
        # past retention even flagged ones go
        assert st.expire_trace_items(now + 86400, recent=900, retention=3600, max_items=100) == 3
        assert st.trace_items(trace_id=t_flag) == []
    finally:
        st.close()


def test_request_rows_finds_payload_and_label_by_request_id(store_url: str) -> None:
    from infersight.processor.storage.base import Feedback

    st = open_storage(store_url, (60,))
    try:
        st.write(
            WriteBatch(
                predictions=[Prediction("m", "2", "r1", 5 * NS, "t" * 32, "s" * 16, '{"x": 1}', "[0.5]", False)],
                feedback=[Feedback("m", "2", "r1", 9 * NS, '"yes"', '{"region": "eu"}')],
            )
        )
        rows = st.request_rows("r1")
        assert rows["prediction"]["inputs"] == {"x": 1} and rows["prediction"]["outputs"] == [0.5]
        assert rows["feedback"] == {
            "model": "m",
            "version": "2",
            "time": 9.0,
            "actual": "yes",
            "attributes": {"region": "eu"},
        }
        assert st.request_rows("nope") == {"prediction": None, "outcome": None, "feedback": None}
    finally:
        st.close()


def test_keep_items_flags_errors_violations_and_payload_logs_and_strips_payloads() -> None:
    ok = SpanPoint("GET /", {"service.name": "api"}, {"ml.request.id": "r"}, "a" * 32, "1" * 16, 0, 10, False)
    bad = SpanPoint("predict m", {}, {"ml.model.name": "m"}, "b" * 32, "2" * 16, 0, 10, False)
    bad.events = (("ml.schema.violation", 5, {"ml.feature.name": "age", "ml.schema.rule": "max"}),)
    log = LogPoint(
        "ml.prediction", {}, {"ml.model.name": "m", "ml.inputs": {"x": 1}, "ml.request.id": "r"}, 7, "a" * 32, "1" * 16
    )
    fb = LogPoint("ml.feedback", {}, {"ml.request.id": "r"}, 8, "a" * 32, "1" * 16)
    items = keep_items([ok, bad], [log, fb], "all")
    assert [(i.kind, i.flagged) for i in items] == [("span", False), ("span", True), ("log", True)]
    assert "ml.inputs" not in items[2].body["attributes"]  # the payload lives in the predictions table
    assert items[1].body["events"][0]["attributes"]["ml.schema.rule"] == "max"
    assert [i.item_id for i in keep_items([ok, bad], [log], "flagged")] == ["2" * 16, items[2].item_id]
    assert keep_items([ok, bad], [log], "off") == []


def test_dashboard_section_errors_name_key_value_and_fix() -> None:
    with pytest.raises(ConfigError, match=r"dashboard.traces.keep: 'some' is not one of all, flagged, off"):
        parse_dashboard({"traces": {"keep": "some"}}, "dashboard")
    with pytest.raises(ConfigError, match=r"dashboard.jaeger_url: 'jaeger' is not an http\(s\) URL.*16686"):
        parse_dashboard({"jaeger_url": "jaeger"}, "dashboard")
    with pytest.raises(ConfigError, match=r"dashboard.colour: unknown key"):
        parse_dashboard({"colour": "red"}, "dashboard")
    with pytest.raises(ConfigError, match=r"max_items: 0 must be a whole number"):
        parse_dashboard({"traces": {"max_items": 0}}, "dashboard")


def test_latency_percentiles_from_explicit_buckets_interpolate_within_the_bucket() -> None:
    ws = WindowStats()
    # 100 calls: 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 0.5]
    ws.histograms["duration"] = ExplicitHistogram((0.1, 0.2, 0.5), np.array([50, 40, 10, 0]), 100, 12.0, 0.01, 0.45)
    p = latency_percentiles(ws)
    assert p["p50"] == pytest.approx(0.1)  # the 50th value closes the first bucket
    assert p["p90"] == pytest.approx(0.2)
    assert p["p99"] == pytest.approx(0.2 + 0.3 * 9 / 10)


def test_pages_and_api_take_the_token_as_header_or_cookie_never_cookie_for_writes(start_processor: Any) -> None:
    p = start_processor(token="s3cret-token")
    web = f"http://127.0.0.1:{p.ports['web']}"
    with httpx.Client(base_url=web, follow_redirects=False, timeout=30) as c:
        r = c.get("/")
        assert r.status_code == 401 and "?token=" in r.text
        assert c.get("/api/dashboard/overview").status_code == 401
        assert c.get("/?token=wrong").status_code == 401
        r = c.get("/models/m?token=s3cret-token&x=1")
        assert r.status_code == 303 and r.headers["location"] == "/models/m?x=1"
        cookie = r.headers["set-cookie"]
        assert "infersight_token=s3cret-token" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        c.cookies.set("infersight_token", "s3cret-token")
        page = c.get("/")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/api/dashboard/overview").json()["models"] == []
        assert c.get("/static/dashboard.js").status_code == 200  # assets hold no data
        # a cookie is sent by the browser on its own: it never authorises a write
        assert c.post("/api/models/m/reference", json={}).status_code == 401
        assert c.get("/api/models", headers={"authorization": "Bearer s3cret-token"}).status_code == 200


def test_request_api_answers_404_with_what_is_kept(start_processor: Any) -> None:
    p = start_processor()
    r = httpx.get(f"http://127.0.0.1:{p.ports['web']}/api/requests/no-such-request", timeout=30)
    assert r.status_code == 404 and "dashboard.traces" in r.json()["error"]


def test_request_body_gathers_spans_violations_payload_and_label(tmp_path: Any) -> None:
    from infersight.processor.dashboard.routes import request_body
    from infersight.processor.storage.base import Feedback

    st = open_storage(f"sqlite:///{tmp_path}/r.db", (60,))
    try:
        trace = "d" * 32
        span = SpanPoint(
            "predict m",
            {"service.name": "api"},
            {"ml.model.name": "m", "ml.model.version": "1", "ml.request.id": "r9"},
            trace,
            "2" * 16,
            1 * NS,
            2 * NS,
            False,
        )
        span.events = (("ml.schema.violation", 1 * NS, {"ml.feature.name": "age", "ml.schema.rule": "max"}),)
        root = SpanPoint("POST /predict", {}, {"ml.request.id": "r9"}, trace, "1" * 16, 0, 3 * NS, False)
        span.parent_span_id = root.span_id
        st.write(
            WriteBatch(
                predictions=[Prediction("m", "1", "r9", 2 * NS, trace, "2" * 16, '{"age": 300}', "[1]", False)],
                feedback=[Feedback("m", "1", "r9", 50 * NS, "0")],
                trace_items=keep_items([span, root], [], "all"),
            )
        )
        settings = parse_dashboard({"jaeger_url": "http://127.0.0.1:16686"}, "dashboard")
        by_request = request_body(st, "r9", settings)
        assert by_request is not None
        assert [s["name"] for s in by_request["spans"]] == ["POST /predict", "predict m"]
        assert by_request["spans"][1]["parent_span_id"] == "1" * 16
        assert by_request["violations"] == [
            {"feature": "age", "rule": "max", "count": None, "message": None, "span_id": "2" * 16}
        ]
        assert by_request["prediction"]["inputs"] == {"age": 300} and by_request["feedback"]["actual"] == 0
        assert by_request["trace_links"] == {trace: f"http://127.0.0.1:16686/trace/{trace}"}
        by_trace = request_body(st, trace, settings)
        assert by_trace is not None and by_trace["request_id"] == "r9" and by_trace["feedback"]["actual"] == 0
        assert request_body(st, "e" * 32, settings) is None
    finally:
        st.close()
