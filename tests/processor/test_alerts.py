"""The alert engine on real stores and real servers on loopback: a webhook receiver
(http.server in a thread), an OTLP/HTTP receiver decoding ExportLogsServiceRequest, and
/api/alerts served by uvicorn.

The findings are written by hand here (the evaluators are tested elsewhere): each helper call is
one evaluated window of one model, as the evaluation loop hands them over.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infersight.processor.alerts import AlertManager, parse_alerts
from infersight.processor.alerts.channels import QueuedChannel, WebhookChannel
from infersight.processor.alerts.settings import ChannelSettings
from infersight.processor.evaluate.findings import Finding
from infersight.processor.storage import open_storage
from support.otlp_sink import OtlpSink, attrs
from support.webhook import Receiver

W = 60  # window size in these tests


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def finding(
    i: int,
    subject: str = "age",
    status: str = "breach",
    *,
    model: str = "churn",
    version: str = "3",
    stat: float = 0.3,
    threshold: float = 0.1,
    p: float | None = 1e-6,
    cause: str | None = "distribution_shift",
    kind: str = "drift",
    revision: int = 0,
    **kw: Any,
) -> Finding:
    return Finding(
        model=model,
        version=version,
        window_size=W,
        window_start=1_700_000_000 + W * i,
        kind=kind,
        subject=subject,
        status=status,
        statistic=stat if status != "ok" else stat / 10,
        threshold=threshold,
        p_value=p,
        cause=cause if status != "ok" else None,
        method="psi",
        evidence=({"trace_id": f"{i:032x}", "span_id": f"{i:016x}", "request_id": f"req-{subject}-{i}"},)
        if status != "ok"
        else (),
        revision=revision,
        **kw,
    )


def manager(
    tmp_path: Path, body: dict[str, Any] | None = None, clock: Clock | None = None, db: str = "a.db"
) -> AlertManager:
    store = open_storage(f"sqlite:///{tmp_path / db}", (W, 3600, 86400))
    return AlertManager(parse_alerts(body or {}, "alerts"), store, clock=clock or Clock())


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"channels": {"hook": {"type": "webhook", "url": url, "backoff": "10ms", **extra}}}


# -- one incident, one open, one resolve --------------------------------------------------------


def test_webhook_gets_one_open_and_one_resolve_across_ten_breaching_and_three_ok_windows(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = hook(receiver.url)
    cfg["channels"]["log"] = {"type": "log"}
    mgr = manager(tmp_path, {**cfg, "trace_url": "http://jaeger:16686/trace/{trace_id}"})
    sent = []
    caplog.set_level(logging.INFO, logger="infersight.alerts")
    for i in range(10):
        # two features of one model breach every window; income more strongly
        sent += mgr.observe(
            [finding(i, "age", stat=0.2), finding(i, "income", stat=0.5, p=1e-9), finding(i, "tenure", "ok")]
        )
    for i in range(10, 13):
        sent += mgr.observe([finding(i, "age", "ok"), finding(i, "income", "ok"), finding(i, "tenure", "ok")])
    assert [(n.event, n.channels) for n in sent] == [("open", ("hook", "log")), ("resolve", ("hook", "log"))]
    receiver.wait("bodies", 2)
    mgr.close()
    assert [b["event"] for b in receiver.bodies] == ["open", "resolve"]
    opened = receiver.bodies[0]
    assert opened["schema"] == "infersight.alert/v1"
    inc = opened["incident"]
    assert inc["id"] == receiver.bodies[1]["incident"]["id"]
    # what moved, ranked by severity, with statistic, threshold and p-value
    assert [t["subject"] for t in inc["top"]] == ["income", "age"]
    assert inc["top"][0]["statistic"] == 0.5 and inc["top"][0]["threshold"] == 0.1 and inc["top"][0]["p_value"] == 1e-9
    # since the first breaching window, not the window where persistence was reached
    assert inc["since"] == 1_700_000_000 and inc["first_window"] == 1_700_000_000
    assert inc["cause_class"] == "world" and "shifted in distribution" in inc["check_first"]
    # evidence leads to the request in one step
    ev = inc["evidence"][0]
    assert ev["trace_id"] == f"{1:032x}" and ev["request_id"] == "req-income-1"
    assert ev["url"] == f"http://jaeger:16686/trace/{1:032x}"
    assert "income" in opened["text"] and "age" in opened["text"] and f"trace {1:032x}" in opened["text"]
    # the log channel wrote the same two notifications as JSON lines
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "infersight.alerts"]
    assert [x["event"] for x in logged] == ["open", "resolve"]
    assert mgr.stats()["channels"]["hook"]["sent"] == 2
    resolved = mgr.incidents("resolved")
    assert len(resolved) == 1 and [h["event"] for h in resolved[0]["history"]][:3] == ["open", "notified", "resolve"]


def test_a_single_breaching_window_opens_nothing(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    sent = []
    for i in range(40):
        # isolated breaches (every other window), warnings and sub-threshold breaches never persist
        status = "breach" if i % 2 == 0 else "warning"
        sent += mgr.observe([finding(i, "age", status), finding(i, "income", "breach", stat=0.05)])
    assert sent == []
    assert mgr.incidents() == []
    # two in a row do open (auto persistence: 2 for two features in 1-minute windows)
    assert mgr.observe([finding(40, "age")]) == []
    assert [n.event for n in mgr.observe([finding(41, "age")])] == ["open"]
    mgr.close()


def test_persistence_counts_per_subject_and_follows_the_false_alarm_budget(tmp_path: Path) -> None:
    """docs/alert-fatigue.md: a feature must breach in consecutive windows (chance breaches
    land on a different feature each time); two features judged every minute need two such
    windows, a hundred need three."""
    mgr = manager(tmp_path)
    few = lambda i, *bad: [finding(i, s, "breach" if s in bad else "ok") for s in ("age", "income")]  # noqa: E731
    assert mgr.observe(few(0, "age")) == []
    assert mgr.observe(few(1, "income")) == []  # a different feature: no run of two
    sent = mgr.observe(few(2, "income", "age"))
    assert [n.event for n in sent] == ["open"] and sent[0].incident is not None
    inc = sent[0].incident
    # income's run of two began in window 1; age breached in windows 0 and 2, not in a row
    assert inc["persistence"] == 2 and inc["subjects"] == ["income"]
    assert inc["first_window"] == 1_700_000_000 + W
    many = lambda i, bad: [  # noqa: E731
        finding(i, f"f{k}", "breach" if k == bad else "ok", model="fraud") for k in range(100)
    ]
    assert [n for i in range(12) for n in mgr.observe(many(i, i))] == []  # a new feature each window
    assert mgr.observe(many(12, 0)) == [] and mgr.observe(many(13, 0)) == []
    sent = mgr.observe(many(14, 0))
    assert [n.event for n in sent] == ["open"] and sent[0].incident is not None
    assert sent[0].incident["persistence"] == 3
    mgr.close()


def test_two_features_of_one_model_make_one_incident_naming_both_and_pipeline_wins(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    batch = lambda i: [  # noqa: E731
        finding(i, "age", stat=0.4),
        finding(i, "country", stat=0.2, cause="unseen_categories", details={"importance": 5.0}),
        finding(i, "age", kind="data_quality", status="ok"),
    ]
    sent = mgr.observe(batch(0)) + mgr.observe(batch(1))
    assert [n.event for n in sent] == ["open"]
    inc = sent[0].incident
    assert inc is not None
    # severity x importance: country 2 x 5 = 10 ranks above age 4 x 1
    assert inc["subjects"] == ["country", "age"]
    assert inc["cause_class"] == "pipeline" and inc["causes"] == {"pipeline": ["country"], "world": ["age"]}
    assert "categories never seen in training" in inc["check_first"] and "country" in inc["check_first"]
    # the other versions of the model are separate incidents (dedup key has the version)
    assert [n.event for n in mgr.observe([finding(2, "age", version="4")])] == []
    assert len(mgr.incidents("open")) == 1
    mgr.close()


def test_new_subject_while_open_sends_at_most_one_update_per_update_every_windows(tmp_path: Path) -> None:
    mgr = manager(tmp_path, {"update_every": 4})
    events = []
    subjects = ["age"]
    for i in range(20):
        if i in (5, 6, 7, 12):
            subjects.append(f"f{i}")  # a new feature joins the incident
        events += [(i, n.event) for n in mgr.observe([finding(i, s) for s in subjects])]
    assert events[0] == (1, "open")
    updates = [i for i, e in events if e == "update"]
    # a new feature joins once it has breached for the persistence (2 windows here): f5 at 6,
    # which goes out at once (5 windows after the open); f6 and f7 join at 7 and 8 and wait for
    # window 10, together; f12 joins at 13 and waits for 14: never more than one update per 4 windows
    assert updates == [6, 10, 14]
    inc = mgr.incidents("open")[0]
    assert set(inc["subjects_seen"]) == {"age", "f5", "f6", "f7", "f12"}
    assert [h["event"] for h in inc["history"]].count("changed") == 4
    mgr.close()


def test_cooldown_keeps_a_flapping_key_quiet_and_announces_it_if_it_outlasts_the_cooldown(tmp_path: Path) -> None:
    mgr = manager(tmp_path, {"cooldown": "10m", "resolve_after": 2})
    seq = "BBOO" + "BBOO" + "BB" + "BBBBBBBBBB" + "OO" + "O" * 12 + "BB"
    events = []
    for i, c in enumerate(seq):
        events += [
            (i, n.event, (n.incident or {}).get("id"))
            for n in mgr.observe([finding(i, "age", "breach" if c == "B" else "ok")])
        ]
    # open at 1, resolve at 3 (notified; quiet for 10 windows up to the end of window 13)
    assert events[0][:2] == (1, "open") and events[1][:2] == (3, "resolve")
    first = events[0][2]
    # 4..7 flap inside the cooldown: the same incident re-opens and resolves silently; from 8 it
    # breaches on and outlasts the cooldown: announced (same incident id) once it ends
    assert events[2] == (13, "open", first)
    assert events[3][:2] == (21, "resolve")
    # after a quiet stretch longer than the cooldown a breach is a new incident
    assert events[4][:2] == (len(seq) - 1, "open") and events[4][2] != first
    assert len(events) == 5
    hist = [h["event"] for h in mgr.incidents("resolved")[0]["history"]]
    assert "reopened" in hist
    mgr.close()


def test_budget_caps_a_flood_of_noisy_features_per_model(tmp_path: Path, receiver: Receiver) -> None:
    clock = Clock()
    body = {
        **hook(receiver.url),
        "budget": {"max": 5, "period": "1h"},
        # one incident per feature (not the default): the flood the budget exists for
        "policies": [{"name": "drift", "kinds": ["drift"], "dedup": ["model", "subject"]}],
    }
    mgr = manager(tmp_path, body, clock)
    sent = []
    for i in range(3):
        sent += mgr.observe([finding(i, f"f{k}") for k in range(50)])
        sent += mgr.observe([finding(i, "age", model="fraud")])
        clock.t += W
    noisy = [n.event for n in sent if n.model == "churn"]
    assert noisy == ["open"] * 5 + ["budget_exhausted"]
    # another model keeps its own budget
    assert [n.event for n in sent if n.model == "fraud"] == ["open"]
    assert mgr.stats()["suppressed"] == 45
    assert len(mgr.incidents("open", model="churn")) == 50
    assert sum(bool(i["suppressed"]) for i in mgr.incidents("open", model="churn")) == 45
    # next period: the model's next window brings one summary with the count (even a quiet
    # window), then held-back incidents still open are announced as the new budget allows
    clock.t += 3600
    summary = mgr.observe([finding(3, f"f{k}", "ok") for k in range(50)])
    assert [n.event for n in summary] == ["budget_summary"]
    assert summary[0].to_dict()["budget"]["suppressed"] == 45
    later = mgr.observe([finding(4, f"f{k}") for k in range(50)])
    assert [n.event for n in later] == ["open"] * 5 + ["budget_exhausted"]
    receiver.wait("bodies", 6 + 1 + 7)
    mgr.close()
    assert len(receiver.bodies) == 14


def test_open_incidents_survive_a_restart(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    assert [n.event for n in mgr.observe([finding(0, "age")]) + mgr.observe([finding(1, "age")])] == ["open"]
    mgr.observe([finding(2, "age")])
    # one breaching window of another key before the restart: its streak survives too
    mgr.observe([finding(2, "x", model="fraud")])
    opened = mgr.incidents("open")[0]
    mgr.close()
    mgr.storage.close()

    again = manager(tmp_path)
    assert [i["id"] for i in again.incidents("open")] == [opened["id"]]
    assert [n.event for n in again.observe([finding(3, "x", model="fraud")])] == ["open"]
    sent = [n for i in range(4, 7) for n in again.observe([finding(i, "age", "ok")])]
    assert [(n.event, (n.incident or {})["id"]) for n in sent] == [("resolve", opened["id"])]
    again.close()


def test_state_on_both_engines(store_url: str) -> None:
    store = open_storage(store_url, (W, 3600, 86400))
    mgr = AlertManager(parse_alerts({}, "alerts"), store, clock=Clock())
    assert [n.event for i in range(3) for n in mgr.observe([finding(i, "age")])] == ["open"]
    mgr.close()
    again = AlertManager(parse_alerts({}, "alerts"), store, clock=Clock())
    assert [n.event for i in range(3, 6) for n in again.observe([finding(i, "age", "ok")])] == ["resolve"]
    assert again.incidents("resolved", model="churn")[0]["state"] == "resolved"
    again.close()
    store.close()


def test_a_revised_window_that_changes_the_verdict_is_recorded_in_the_incident(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    for i in range(4):
        mgr.observe([finding(i, "age")])
    # late data re-opens window 1: now ok. No message, but the history says so.
    assert mgr.observe([finding(1, "age", "ok", revision=1)]) == []
    # a revision that does not change the verdict is not an event
    assert mgr.observe([finding(2, "age", revision=1)]) == []
    inc = mgr.incidents("open")[0]
    revised = [h for h in inc["history"] if h["event"] == "revised"]
    assert len(revised) == 1
    assert revised[0]["window_start"] == 1_700_000_000 + W and revised[0]["revision"] == 1
    assert (revised[0]["was"], revised[0]["now"]) == ("breach", "ok")
    assert mgr.stats()["revisions"] == 1
    mgr.close()


def test_runbook_from_finding_details_then_model_then_policy(tmp_path: Path) -> None:
    body = {
        "runbooks": {"churn*": "https://wiki/churn"},
        "policies": [{"name": "dq", "kinds": ["data_quality"], "statuses": ["breach", "no_data"], "runbook": "see dq"}],
    }
    mgr = manager(tmp_path, body)
    f = lambda i: finding(  # noqa: E731
        i, "email", "no_data", kind="data_quality", cause="feature_missing", details={"runbook": "ask team A"}
    )
    inc = (mgr.observe([f(0)]) + mgr.observe([f(1)]))[0].incident
    assert inc is not None
    assert inc["runbook"] == "ask team A" and inc["runbooks"] == ["ask team A", "https://wiki/churn", "see dq"]
    assert "stopped arriving" in inc["check_first"] and inc["cause_class"] == "pipeline"
    mgr.close()


# -- a failing endpoint never blocks evaluation ------------------------------------------------


def test_a_hanging_webhook_does_not_stall_observe_and_the_sender_gives_up_counted(tmp_path: Path) -> None:
    hanging = Receiver(mode="close", gated=True)
    try:
        mgr = manager(tmp_path, hook(hanging.url, retries=2, timeout="30s"))
        sent = mgr.observe([finding(0, "age")]) + mgr.observe([finding(1, "age")])
        assert [n.event for n in sent] == ["open"]
        hanging.wait("attempts", 1)  # the sender is inside its first attempt, held by the server
        # evaluation goes on while it hangs: windows are observed and an incident resolves
        later = [n for i in range(2, 12) for n in mgr.observe([finding(i, "age", "ok" if i > 4 else "breach")])]
        assert [n.event for n in later] == ["resolve"]
        st = mgr.stats()["channels"]["hook"]
        assert (st["sent"], st["failed"], st["queued"]) == (0, 0, 2)  # still stuck in attempt one
        hanging.gate.set()  # now the server drops each connection unanswered
        ch = mgr.channels["hook"]
        assert isinstance(ch, WebhookChannel) and ch.wait_idle(30)
        st = mgr.stats()["channels"]["hook"]
        # each notification: first try + 2 retries, then given up and counted
        assert (st["sent"], st["failed"], st["retried"]) == (0, 2, 4)
        assert hanging.attempts == 6
        mgr.close()
    finally:
        hanging.stop()


def test_a_webhook_that_never_answers_times_out_and_a_closed_port_is_retried(tmp_path: Path) -> None:
    silent = Receiver(mode="ok", gated=True)  # reads the request and never answers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket is closed
    try:
        body = {
            "channels": {
                "silent": {"type": "webhook", "url": silent.url, "timeout": "200ms", "retries": 1, "backoff": "10ms"},
                "closed": {
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{closed_port}/x",
                    "retries": 3,
                    "backoff": "10ms",
                },
                "log": {"type": "log"},
            }
        }
        mgr = manager(tmp_path, body)
        sent = mgr.observe([finding(0, "age")]) + mgr.observe([finding(1, "age")])
        assert [n.event for n in sent] == ["open"]
        for name in ("silent", "closed"):
            ch = mgr.channels[name]
            assert isinstance(ch, WebhookChannel) and ch.wait_idle(30)
        st = mgr.stats()["channels"]
        assert (st["silent"]["failed"], st["silent"]["retried"], st["silent"]["sent"]) == (1, 1, 0)
        assert (st["closed"]["failed"], st["closed"]["retried"], st["closed"]["sent"]) == (1, 3, 0)
        assert st["log"]["sent"] == 1
        mgr.close()
    finally:
        silent.stop()


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    r = Receiver(mode=400)
    try:
        mgr = manager(tmp_path, hook(r.url, retries=5))
        mgr.observe([finding(0, "age")])
        mgr.observe([finding(1, "age")])
        ch = mgr.channels["hook"]
        assert isinstance(ch, WebhookChannel) and ch.wait_idle(30)
        assert (ch.stats()["failed"], ch.stats()["retried"], r.attempts) == (1, 0, 1)
        mgr.close()
    finally:
        r.stop()


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    r = Receiver(mode="ok", gated=True)
    try:
        ch = WebhookChannel(ChannelSettings(name="q", type="webhook", url=r.url, queue=2, retries=0))
        ch.send({"n": 0})
        r.wait("attempts", 1)  # 0 is in flight, held by the server
        for n in range(1, 6):
            ch.send({"n": n})
        assert ch.stats()["dropped"] == 3 and ch.stats()["queued"] == 3
        r.gate.set()
        assert ch.wait_idle(30)
        assert [b["n"] for b in r.bodies] == [0, 4, 5]
        assert ch.stats()["sent"] == 3
        ch.close()
    finally:
        r.stop()


# -- OTLP log records ------------------------------------------------------------------------


def test_otlp_channel_sends_log_records_a_receiver_decodes(tmp_path: Path) -> None:
    with OtlpSink() as sink:
        body = {
            "channels": {"otel": {"type": "otlp", "endpoint": sink.http_endpoint, "service_name": "proc-a"}},
            "policies": [
                {"name": "drift", "kinds": ["drift"], "severity": "page"},
                {"name": "dq", "kinds": ["data_quality"], "severity": "ticket"},
            ],
        }
        mgr = manager(tmp_path, body)
        mgr.observe([finding(0, "age"), finding(0, "email", kind="data_quality", cause="missing_rate_jump")])
        mgr.observe([finding(1, "age"), finding(1, "email", kind="data_quality", cause="missing_rate_jump")])
        for i in range(2, 5):
            mgr.observe([finding(i, "age", "ok"), finding(i, "email", "ok", kind="data_quality")])
        ch = mgr.channels["otel"]
        assert isinstance(ch, QueuedChannel) and ch.wait_idle(30)
        mgr.close()
        records = sink.log_records()
    assert len(records) == 4
    by_event: dict[tuple[str, str], Any] = {}
    for resource, rec in records:
        assert resource["service.name"] == "proc-a"
        a = attrs(rec.attributes)
        by_event[(a["alert.policy"], a["alert.event"])] = (rec, a)
    rec, a = by_event[("drift", "open")]
    assert (rec.severity_number, rec.severity_text) == (17, "ERROR")  # page
    assert a["ml.model.name"] == "churn" and a["ml.model.version"] == "3" and a["alert.cause_class"] == "world"
    assert rec.trace_id.hex() == f"{1:032x}"  # the alert links to the request's trace
    assert "age" in rec.body.string_value
    payload = json.loads(a["alert.payload"])
    assert payload["incident"]["id"] == a["alert.id"] and payload["incident"]["top"][0]["subject"] == "age"
    rec, a = by_event[("dq", "open")]
    assert (rec.severity_number, a["alert.cause_class"]) == (13, "pipeline")  # ticket: WARN
    rec, a = by_event[("drift", "resolve")]
    assert rec.severity_number == 9  # resolves are INFO


# -- /api/alerts on a real server --------------------------------------------------------------


def _serve(app: Any) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(2000):
        if server.started:
            break
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_alerts_lists_open_and_resolved_incidents_with_history(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from infersight.processor.alerts.routes import alert_routes

    mgr = manager(tmp_path)
    for i in range(6):
        mgr.observe([finding(i, "age", "breach" if i < 3 else "ok")])  # opens and resolves
    for i in range(6, 9):
        mgr.observe([finding(i, "x", model="fraud")])  # stays open
    server, thread, base = _serve(Starlette(routes=alert_routes(mgr)))
    try:
        code, body = _get(f"{base}/api/alerts?state=open")
        assert code == 200 and [i["model"] for i in body["incidents"]] == ["fraud"]
        code, body = _get(f"{base}/api/alerts?state=resolved&model=churn")
        assert [i["state"] for i in body["incidents"]] == ["resolved"]
        assert [h["event"] for h in body["incidents"][0]["history"]] == ["open", "notified", "resolve"]
        code, body = _get(f"{base}/api/alerts")
        assert len(body["incidents"]) == 2 and body["stats"]["notifications"] == 3
        # a range after churn's incident ended keeps only fraud's
        code, body = _get(f"{base}/api/alerts?start={1_700_000_000 + 7 * W}")
        assert [i["model"] for i in body["incidents"]] == ["fraud"]
        code, body = _get(f"{base}/api/alerts?end=1970-01-02T00:00:00Z")
        assert body["incidents"] == []
        code, body = _get(f"{base}/api/alerts?state=closed")
        assert code == 400 and "state='closed'" in body["error"]
        code, body = _get(f"{base}/api/alerts?start=yesterday")
        assert code == 400 and "start='yesterday'" in body["error"]
    finally:
        server.should_exit = True
        thread.join(10)
        mgr.close()
