"""A day with the evaluation loop: an instrumented app (``@infersight.monitor``) sends real OTLP
to a processor on loopback, a reference is pushed over the API, and the loop, run with an
explicit clock, finds what was injected: covariate drift in two features (and since which
window), a NaN flood (a pipeline problem, not drift), a feature that stopped arriving, and a
late point that re-opens a verdict without rewriting its history."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

import infersight
from infersight.processor.config import load_config
from infersight.processor.evaluate.findings import Finding
from infersight.processor.service import Processor
from infersight.processor.storage.base import FEATURE
from infersight.stats.reference import Reference
from support.otlp_sink import OtlpSink
from support.otlp_sink import attrs as otlp_attrs
from support.webhook import Receiver

BASE = 2  # seconds: the storage window, and the evaluation window
WINDOWS = 7
DRIFT_FROM = 3  # features a and b move from this batch on
NAN_FLOOD = 5  # feature c is mostly NaN in this batch
D_STOPS = 6  # feature d is no longer sent from this batch on


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "processor.yaml"
    path.write_text(
        f"""
storage:
  window: {BASE}s
  rollups: [60s]
models:
  "*":
    windows: [{BASE}s]
    runbook: https://runbooks.example.com/churn
evaluation:
  enabled: false   # the tests drive run_once with their own clock
  lateness: 1s
  reopen: 1h
{extra}
"""
    )
    return path


def _start(tmp_path: Path, extra: str = "") -> Processor:
    cfg = load_config(
        _config(tmp_path, extra),
        {
            "db": f"sqlite:///{tmp_path}/p.db",
            "otlp_grpc": "127.0.0.1:0",
            "otlp_http": "127.0.0.1:0",
            "web": "127.0.0.1:0",
        },
    )
    p = Processor(cfg)
    p.start()
    return p


def _rows(rng: np.random.Generator, i: int, n: int = 400) -> list[dict[str, Any]]:
    shift = 1.0 if i >= DRIFT_FROM else 0.0
    a = rng.normal(shift, 1, n)
    b = rng.normal(10 + 2 * shift, 2, n)
    c = rng.normal(5, 1, n)
    if i == NAN_FLOOD:
        c[: int(0.6 * n)] = np.nan
    d = rng.normal(0, 1, n)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2])
    rows = []
    for k in range(n):
        r: dict[str, Any] = {"a": float(a[k]), "b": float(b[k]), "c": float(c[k]), "plan": str(plan[k])}
        if i < D_STOPS:
            r["d"] = float(d[k])
        rows.append(r)
    return rows


def _reference(rng: np.random.Generator) -> Reference:
    n = 5000
    return Reference.from_data(
        {
            "a": rng.normal(0, 1, n),
            "b": rng.normal(10, 2, n),
            "c": rng.normal(5, 1, n),
            "d": rng.normal(0, 1, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]).astype(object),
        },
        model="churn",
    )


def web(p: Processor, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{p.ports['web']}{path}", params=params, timeout=30)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One processor fed by an instrumented app: WINDOWS windows of BASE seconds, one batch each."""
    tmp = tmp_path_factory.mktemp("evaluate")
    sink = OtlpSink().start()
    hook = Receiver()
    alerts = f"""
alerts:
  channels:
    hook: {{type: webhook, url: "{hook.url}", retries: 0}}
  routes:
    - {{channels: [hook]}}
"""
    p = _start(tmp, f"  export: {sink.http_endpoint}\n{alerts}")
    infersight.configure(
        endpoint=f"http://127.0.0.1:{p.ports['otlp_http']}",
        protocol="http/protobuf",
        service_name="churn-api",
        log_output="none",
        payload_sample_rate=1.0,
        metric_export_interval=3600,
    )

    @infersight.monitor(model="churn", version="1")
    def predict(rows: list[dict[str, Any]]) -> list[str]:
        return ["stay" if r["a"] < 1 else "leave" for r in rows]

    rng = np.random.default_rng(14)
    ref = _reference(rng)
    r = httpx.post(f"http://127.0.0.1:{p.ports['web']}/api/models/churn/reference", json=ref.to_dict(), timeout=30)
    assert r.status_code == 201, r.text
    batch_window: list[int] = []
    for i in range(WINDOWS):
        # Start just after a window boundary so the batch and its export share one window.
        time.sleep(BASE + 0.05 - time.time() % BASE)
        predict(_rows(rng, i))
        assert infersight.flush()
        batch_window.append(int(time.time()) // BASE * BASE)
    infersight.configure(exporter="none", log_output="none")
    stored = sorted({k.start for k, _ in p.storage.iter_windows(BASE) if k.model == "churn" and k.role == FEATURE})
    now = stored[-1] + BASE + 1.0  # the last window closed, lateness (1 s) over
    made = p.evaluation.run_once(now=now)
    yield {"p": p, "sink": sink, "hook": hook, "made": made, "stored": stored, "now": now, "batch_window": batch_window}
    p.stop()
    sink.stop()
    hook.stop()


def _breaches(made: list[Finding], kind: str) -> dict[tuple[int, str], Finding]:
    return {(f.window_start, f.subject): f for f in made if f.kind == kind and f.status == "breach" and not f.version}


def test_each_batch_landed_in_a_window_of_its_own(day):
    assert len(day["stored"]) == WINDOWS, day["stored"]


def test_covariate_drift_in_two_features_is_found_with_the_window_it_began(day):
    stored, made = day["stored"], day["made"]
    drift = _breaches(made, "drift")
    assert {s for _, s in drift} == {"a", "b"}
    start = stored[DRIFT_FROM]
    for w in stored[DRIFT_FROM:]:
        for feature in ("a", "b"):
            f = drift[(w, feature)]
            assert f.cause == "distribution_shift" and f.cause_class == "world"
            assert f.since == start
            assert f.statistic > f.threshold and f.p_value is not None and f.p_value < 1e-3
            assert f.details["runbook"] == "https://runbooks.example.com/churn"
            assert f.evidence and all(e["request_id"] and e["trace_id"] for e in f.evidence)
    for w in stored[:DRIFT_FROM]:
        assert not any(k[0] == w for k in drift)
    # evidence points at real logged requests of that window
    logged = {
        r["request_id"] for r in day["p"].storage.joined("churn", start * 10**9, (start + BASE) * 10**9, limit=10_000)
    }
    assert {e["request_id"] for e in drift[(start, "a")].evidence} <= logged


def test_a_nan_flood_is_a_pipeline_finding_not_world_drift(day):
    w = day["stored"][NAN_FLOOD]
    dq = _breaches(day["made"], "data_quality")
    f = dq[(w, "c")]
    assert f.cause == "missing_rate_jump" and f.cause_class == "pipeline"
    assert f.details["missing_rate"] == pytest.approx(0.6, abs=0.01)
    assert f.details["missing_by_kind"]["nan"] == pytest.approx(0.6, abs=0.01)
    drift_c = [g for g in day["made"] if g.kind == "drift" and g.subject == "c" and g.window_start == w]
    assert drift_c and all(g.status == "ok" for g in drift_c)
    assert not [g for g in day["made"] if g.status == "breach" and g.subject == "c" and g.cause_class == "world"]


def test_a_feature_that_stops_arriving_is_reported(day):
    w = day["stored"][D_STOPS]
    f = _breaches(day["made"], "data_quality")[(w, "d")]
    assert f.cause == "feature_missing" and f.cause_class == "pipeline"
    assert not any(k == (v, "d") for v in day["stored"][:D_STOPS] for k in _breaches(day["made"], "data_quality"))


def test_the_drift_is_one_alert_naming_both_features_since_the_window_it_began(day):
    """Four drifting windows, two features: one incident, one notification, not one per window
    or per feature. The NaN flood in c and, in the next window, d no longer arriving are one
    window each: under the three windows in a row that five features judged every 2 seconds
    need to stay in the false-alarm budget (docs/alert-fatigue.md), so neither is named."""
    day["hook"].wait("bodies", 1)
    p, stored = day["p"], day["stored"]
    p.alerts.close()  # drains the sender queue: every notification has been posted
    bodies = day["hook"].bodies
    assert [(b["event"], b["incident"]["policy"]) for b in bodies] == [("open", "inputs")], [b["text"] for b in bodies]
    drift = bodies[0]["incident"]
    assert set(drift["subjects"]) == {"a", "b"} and drift["since"] == stored[DRIFT_FROM]
    assert drift["persistence"] == 3 and drift["first_window"] == stored[DRIFT_FROM]
    assert drift["cause_class"] == "world" and drift["runbook"] == "https://runbooks.example.com/churn"
    logged = {r["trace_id"] for r in p.storage.joined("churn", 0, 2**62, limit=100_000)}
    assert drift["evidence"] and {e["trace_id"] for e in drift["evidence"]} <= logged
    served = web(p, "/api/alerts", state="open").json()["incidents"]
    assert [i["id"] for i in served] == [drift["id"]]


def test_nothing_else_is_flagged(day):
    flagged = {(f.kind, f.subject) for f in day["made"] if f.status != "ok" and f.subject != "__multivariate__"}
    assert flagged == {("drift", "a"), ("drift", "b"), ("data_quality", "c"), ("data_quality", "d")}


def test_the_multivariate_test_says_when_a_window_has_too_few_sampled_rows(day):
    """Every call is logged (payload_sample_rate=1.0), but one batch of 400 rows a window is cut
    at the SDK's max_payload_bytes (8 KB): the whole rows before the cut are read (a few dozen),
    under the 100 rows the test needs, so each window's verdict is a warning that says so."""
    mv = [f for f in day["made"] if f.subject == "__multivariate__"]
    assert sorted(f.window_start for f in mv) == day["stored"]
    for f in mv:
        assert f.status == "warning" and f.kind == "drift" and f.method == "mmd", f
        assert 30 < f.details["rows"] < 100 and "multivariate_min_rows" in f.details["reason"]


def test_a_late_point_reopens_the_verdict_and_keeps_the_first(day):
    p, stored = day["p"], day["stored"]
    w = stored[1]
    before = [f for f in day["made"] if f.window_start == w and f.kind == "data_quality" and f.subject == "c"]
    assert before[0].status == "ok" and before[0].revision == 0
    # A late export for window 1: 300 NaNs of c, stamped inside that window, sent as OTLP.
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    m = sm.metrics.add(name="ml.feature.missing")
    m.sum.aggregation_temporality = 1  # delta
    m.sum.is_monotonic = True
    dp = m.sum.data_points.add(as_int=300, start_time_unix_nano=w * 10**9, time_unix_nano=(w + 1) * 10**9)
    for k, v in {
        "ml.model.name": "churn",
        "ml.model.version": "1",
        "ml.feature.name": "c",
        "ml.missing.kind": "nan",
    }.items():
        dp.attributes.add(key=k, value=common_pb2.AnyValue(string_value=v))
    r = httpx.post(
        f"http://127.0.0.1:{p.ports['otlp_http']}/v1/metrics",
        content=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    again = p.evaluation.run_once(now=day["now"] + 5)
    reopened = [f for f in again if f.window_start <= stored[-1]]
    assert {f.window_start for f in reopened} == {w}  # only the window that changed
    c = next(f for f in reopened if f.kind == "data_quality" and f.subject == "c")
    assert (c.status, c.cause, c.revision) == ("breach", "missing_rate_jump", 1)
    assert all(f.revision == 1 for f in reopened)
    # and the app has been silent since its last batch: the model stopped reporting
    silent = [f for f in again if f.window_start > stored[-1]]
    assert silent and all((f.subject, f.status, f.cause_class) == ("__model__", "no_data", "pipeline") for f in silent)
    assert {f.since for f in silent} == {stored[-1] + BASE}
    body = web(p, "/api/models/churn/findings", kind="data_quality", start=w, end=w + 1).json()
    got = next(f for f in body["findings"] if f["subject"] == "c")
    assert got["revision"] == 1 and got["status"] == "breach"
    assert [(x["revision"], x["status"]) for x in got["revisions"]] == [(0, "ok")]
    # a pass with nothing new evaluates nothing
    assert p.evaluation.run_once(now=day["now"] + 5) == []


def test_findings_are_served_on_metrics_and_pushed_over_otlp(day):
    p, sink = day["p"], day["sink"]
    text = web(p, "/metrics").text
    last = day["stored"][-1]
    a = [ln for ln in text.splitlines() if ln.startswith("ml_drift_score{") and 'ml_feature_name="a"' in ln]
    assert len(a) == 1 and 'ml_model_name="churn"' in a[0] and 'ml_window_size="2"' in a[0]
    assert float(a[0].rsplit(" ", 1)[1]) > 0.1
    assert "# TYPE ml_drift_detected gauge" in text
    detected = [ln for ln in text.splitlines() if ln.startswith("ml_drift_detected{") and 'ml_feature_name="a"' in ln]
    assert detected[0].endswith(" 1")
    assert p.evaluation.outputs.flush(10)
    assert sink.wait_for(lambda s: s.metric_points("ml.drift.score"), 10)
    pushed = {
        (otlp_attrs(pt.attributes)["ml.feature.name"], pt.time_unix_nano): pt.as_double
        for _, _, pt in sink.metric_points("ml.drift.score")
        if "ml.feature.name" in otlp_attrs(pt.attributes)
    }
    assert pushed[("a", (last + BASE) * 10**9)] > 0.1
    thresholds = sink.metric_points("ml.drift.threshold")
    assert thresholds and all(pt.as_double > 0 for _, _, pt in thresholds)
    assert sink.metric_points("ml.drift.p_value") and sink.metric_points("ml.drift.detected")


def test_drift_api_has_the_cli_shape_per_window_and_merged(day):
    p, stored = day["p"], day["stored"]
    body = web(p, "/api/models/churn/drift", start=stored[0], end=stored[-1] + BASE).json()
    assert len(body["windows"]) == WINDOWS
    w = body["windows"][DRIFT_FROM]
    assert w["features"]["a"]["drift"] and w["features"]["b"]["drift"] and not w["features"]["d"]["drift"]
    assert set(w["features"]["a"]) == {"method", "statistic", "threshold", "p_value", "drift", "cause", "reason"}
    assert body["summary"]["features"]["a"] == WINDOWS - DRIFT_FROM
    assert body["windows"][NAN_FLOOD]["features"]["c"]["cause"] == "missing_rate_jump"  # as the CLI says it
    assert body["summary"]["missing_features"] == []
    merged = web(p, "/api/models/churn/drift", start=stored[DRIFT_FROM], end=stored[-1] + BASE, merge=1).json()
    assert len(merged["windows"]) == 1 and merged["windows"][0]["features"]["a"]["drift"]
    assert merged["windows"][0]["rows"] > 0
    r = web(p, "/api/models/churn/drift", window="3s")
    assert r.status_code == 400 and "multiple of the storage window 2s" in r.json()["error"]
    assert web(p, "/api/models/nope/drift").status_code == 404


def test_a_bad_reference_push_is_refused_with_the_reason(day):
    url = f"http://127.0.0.1:{day['p'].ports['web']}/api/models/churn/reference"
    r = httpx.post(url, content=b"not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and "infersight profile" in r.json()["error"]
    r = httpx.post(url, json={"features": {}}, timeout=10)
    assert r.status_code == 400 and "no features" in r.json()["error"]
    r = httpx.post(
        url, json={"model": "fraud", "n_rows": 1, "features": {"x": {"kind": "numeric", "rows": 1}}}, timeout=10
    )
    assert r.status_code == 400 and "'fraud'" in r.json()["error"]


def test_reference_push_needs_the_token(tmp_path):
    cfg = load_config(
        _config(tmp_path),
        {
            "db": f"sqlite:///{tmp_path}/t.db",
            "otlp_grpc": "127.0.0.1:0",
            "otlp_http": "127.0.0.1:0",
            "web": "127.0.0.1:0",
            "token": "s3cret",
        },
    )
    p = Processor(cfg)
    p.start()
    try:
        ref = _reference(np.random.default_rng(1)).to_dict()
        url = f"http://127.0.0.1:{p.ports['web']}/api/models/churn/reference"
        assert httpx.post(url, json=ref, timeout=10).status_code == 401
        ok = httpx.post(url, json=ref, headers={"authorization": "Bearer s3cret"}, timeout=10)
        assert ok.status_code == 201 and ok.json()["features"] == ["a", "b", "c", "d", "plan"]
        got = p.evaluation.references.resolve("churn", BASE, 1000)
        assert got.reference is not None and got.source.startswith("pushed:")
    finally:
        p.stop()


@pytest.mark.parametrize(
    ("yaml", "names"),
    [
        ("models:\n  churn:\n    windows: [3s]\n", ["models.churn.windows", "3s", "multiple of the storage window 2s"]),
        (
            "models:\n  churn:\n    reference: missing.json\n",
            ["models.churn.reference", "'missing.json'", "infersight profile"],
        ),
        (
            "models:\n  churn:\n    mode: {2s: rolling}\n",
            ["models.churn.mode.2s", "'rolling'", "sliding or cumulative"],
        ),
        ("models:\n  churn:\n    features: {x: {method: nope}}\n", ["models.churn.features.x.method", "'nope'", "psi"]),
        ("models:\n  churn:\n    features: {x: {colour: red}}\n", ["models.churn.features.x.colour", "unknown key"]),
        ("evaluation:\n  lateness: soon\n", ["evaluation.lateness", "'soon'", "5m"]),
        ("evaluation:\n  alpha: 3\n", ["evaluation.alpha", "3", "at most 0.5"]),
        ("evaluation:\n  export: 127.0.0.1:4319\n", ["evaluation.export", "'127.0.0.1:4319'", "http://127.0.0.1:4319"]),
    ],
)
def test_config_errors_name_the_file_the_key_and_the_value(tmp_path, yaml, names):
    path = tmp_path / "bad.yaml"
    path.write_text("storage:\n  window: 2s\n" + yaml)
    with pytest.raises(Exception) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith(str(path)), text
    for n in names:
        assert n in text, text


def test_defaults_work_with_no_config():
    cfg = load_config(None)
    models, ev = cfg.sections["models"], cfg.sections["evaluation"]
    s = models.for_model("anything")
    assert s.window_sizes(cfg.window) == (3600,) and s.mode_for(3600) == "sliding"
    assert ev.lateness_for(cfg.window) == 60 and ev.enabled and ev.export is None
    assert math.isclose(ev.alpha, 0.001)
