"""Replicas on one store, in process: leases (both engines, racing connections), writes fenced
by a lease, models spread by rendezvous hashing, two evaluation loops that evaluate each window
once, and the alert engine's per-model reload on takeover. The same with real processes, a
real PostgreSQL and a SIGKILL is in test_replicas_e2e.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from infersight.processor.alerts import AlertManager, parse_alerts
from infersight.processor.alerts.manager import SENT
from infersight.processor.config import ConfigError
from infersight.processor.evaluate.findings import Finding
from infersight.processor.evaluate.loop import HISTORY, STATE, EvaluationLoop
from infersight.processor.evaluate.ownership import Ownership, failpoint_from_env
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.base import LeaseLost, Record
from infersight.stats.windows import FeatureWindow

SIZE = 60
T0 = 1_700_006_400


def test_a_lease_has_one_holder_until_it_expires_then_passes_on_with_a_new_epoch(store_url: str) -> None:
    a, b = open_storage(store_url, (SIZE,)), open_storage(store_url, (SIZE,))
    try:
        t = 1000.0
        la = a.acquire_lease("model:churn", "a", 30, now=t)
        assert la is not None and (la.owner, la.epoch, la.expires) == ("a", 1, t + 30)
        assert b.acquire_lease("model:churn", "b", 30, now=t + 29) is None
        # the holder keeps it (same epoch) by taking it again or renewing
        again = a.acquire_lease("model:churn", "a", 30, now=t + 10)
        assert again is not None and again.epoch == 1
        renewed = a.renew_lease(again, 30, now=t + 20)
        assert renewed is not None and renewed.expires == t + 50
        assert [x.owner for x in b.leases("model:", now=t + 49)] == ["a"]
        assert b.leases("model:", now=t + 50) == []
        # expired: another owner takes it, the epoch moves, and the old holder can renew nothing
        lb = b.acquire_lease("model:churn", "b", 30, now=t + 50)
        assert lb is not None and (lb.owner, lb.epoch) == ("b", 2)
        assert a.renew_lease(renewed, 30, now=t + 51) is None
        assert a.release_lease(renewed) is False
        # a release frees it at once
        assert b.release_lease(lb) is True
        la2 = a.acquire_lease("model:churn", "a", 30, now=t + 52)
        assert la2 is not None and la2.epoch == 3
        # the store's own clock when none is given
        held = a.leases("model:")
        assert [x.name for x in held] == [] or held[0].expires > time.time() - 5
    finally:
        a.close()
        b.close()


def test_racing_connections_agree_on_one_winner(store_url: str) -> None:
    # one store object per thread: separate connections, as separate processes have
    stores = [open_storage(store_url, (SIZE,)) for _ in range(6)]
    try:
        for round_ in range(5):
            go = threading.Barrier(len(stores))
            won: list[str] = []

            def race(i: int, round_: int = round_, go: threading.Barrier = go, won: list[str] = won) -> None:
                go.wait()
                if stores[i].acquire_lease(f"model:m{round_}", f"r{i}", 30) is not None:
                    won.append(f"r{i}")

            threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            assert len(won) == 1, won
            assert [x.owner for x in stores[0].leases(f"model:m{round_}")] == won
    finally:
        for s in stores:
            s.close()


def test_a_write_fenced_by_a_lease_that_moved_commits_nothing(store_url: str) -> None:
    a, b = open_storage(store_url, (SIZE,)), open_storage(store_url, (SIZE,))
    try:
        lease = a.acquire_lease("model:churn", "a", 30)
        assert lease is not None
        with a.fenced(lease, 30):
            a.put_records([Record("evaluation", "churn|60|0", "churn", 0, {"revision": 0})])
            # the lease runs out (here: b's clock is far ahead) and b takes it over
            assert b.acquire_lease("model:churn", "b", 30, now=time.time() + 3600) is not None
            with pytest.raises(LeaseLost, match="model:churn"):
                a.put_records([Record("evaluation", "churn|60|60", "churn", 60, {"revision": 0})])
            with pytest.raises(LeaseLost):
                a.delete_records("evaluation", keys=["churn|60|0"])
        assert [r.key for r in b.get_records("evaluation")] == ["churn|60|0"]
        # outside the block the same thread writes unfenced again
        a.put_records([Record("evaluation", "other|60|0", "other", 0, {})])
        assert len(b.get_records("evaluation")) == 2
    finally:
        a.close()
        b.close()


def test_two_replicas_share_the_models_and_hand_them_over_when_one_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    sa, sb = open_storage(url, (SIZE,)), open_storage(url, (SIZE,))
    models = [f"m{i}" for i in range(12)]
    a, b = Ownership(sa, 30, replica="replica-a"), Ownership(sb, 30, replica="replica-b")
    taken: list[str] = []
    b.on_acquire.append(taken.append)
    a.claim(models)  # alone so far: a takes every model
    assert b.claim(models) == []  # b ranks some first, but a holds them until its next pass
    a.claim(models)  # a sees b now and lets go of b's share
    mine_a, mine_b = a.claim(models), b.claim(models)
    assert mine_a and mine_b, (mine_a, mine_b)
    assert not set(mine_a) & set(mine_b) and sorted(mine_a + mine_b) == sorted(models)
    assert set(taken) == set(mine_b)
    assert a.status()["replicas"] == ["replica-a", "replica-b"]
    # a stops gracefully: its leases go at once and b takes every model
    a.release_all()
    assert b.claim(models) == models
    sa.close()
    sb.close()


def _write(store, model: str, start: int, x: np.ndarray) -> None:
    b = WriteBatch()
    b.windows[WindowKey(model, "1", FEATURE, "x", SIZE, start)] = FeatureWindow.from_column(x, "numeric").to_stats()
    store.write(b)


def test_two_loops_on_one_store_evaluate_each_window_once_and_split_the_models(store_url: str) -> None:
    seed = open_storage(store_url, (SIZE, 3600))
    rng = np.random.default_rng(5)
    models = [f"m{i}" for i in range(6)]
    for m in models:
        for day in (0, 1):
            for w in range(4):
                _write(seed, m, T0 + day * 86400 + w * SIZE, rng.normal(2.0 * day, 1, 300))
    seed.close()
    loops, regs, seen = [], [], []
    for name in ("replica-a", "replica-b"):
        st = open_storage(store_url, (SIZE, 3600))
        reg = Registry()
        got: list[Finding] = []
        loops.append(
            EvaluationLoop(
                st,
                parse_models({"*": {"windows": ["1m"]}}, "models"),
                parse_evaluation({"lateness": 0, "backfill": "1h", "no_data_for": "1m"}, "evaluation"),
                registry=reg,
                on_findings=got.extend,
                ownership=Ownership(st, 30, replica=name),
            )
        )
        regs.append(reg)
        seen.append(got)
    for loop in loops:  # both announce themselves on start (Processor.start does)
        assert loop.ownership is not None and loop.ownership.claim([]) == []
    now = T0 + 86400 + 4 * SIZE
    for _ in range(3):  # passes interleaved, as two replicas' timers are
        for loop in loops:
            loop.run_once(now=now)
    evaluated = [r.value("infersight_processor_windows_evaluated_total", reopened="false") for r in regs]
    assert sum(evaluated) == len(models) * 4 and all(evaluated), evaluated
    by_replica = [{f.model for f in got} for got in seen]
    assert by_replica[0] and by_replica[1] and not by_replica[0] & by_replica[1]
    st = loops[0].storage
    states = st.get_records(STATE)
    assert len(states) == len(models) * 4 and {r.body["revision"] for r in states} == {0}
    assert st.get_records(HISTORY) == []
    drift = [f for got in seen for f in got if f.kind == "drift" and f.subject == "x"]
    assert len(drift) == len(models) * 4 and {f.status for f in drift} == {"breach"}
    for loop in loops:
        loop.storage.close()


def _breach(i: int, status: str = "breach") -> Finding:
    return Finding(
        model="churn",
        version="1",
        window_size=SIZE,
        window_start=T0 + SIZE * i,
        kind="drift",
        subject="age",
        status=status,
        statistic=0.3 if status == "breach" else 0.01,
        threshold=0.1,
    )


def test_a_replica_taking_a_model_over_reloads_its_alerts_and_sends_nothing_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    cfg = parse_alerts({"persistence": 3, "resolve_after": 2}, "alerts")
    a = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9, replica="a")
    b = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9, replica="b")  # up since the start
    sent = [n for i in range(4) for n in a.observe([_breach(i)])]
    assert [n.event for n in sent] == ["open"]
    # b takes the model over: what it remembers is stale until it reads the store again
    b.reload_model("churn")
    later = [n for i in range(4, 8) for n in b.observe([_breach(i, "breach" if i < 6 else "ok")])]
    assert [n.event for n in later] == ["resolve"]
    assert later[0].incident is not None and later[0].incident["id"] == sent[0].incident["id"]  # type: ignore[index]
    records = b.storage.get_records(SENT)
    assert [(r.body["event"], r.body["replica"]) for r in records] == [("open", "a"), ("resolve", "b")]
    assert [r.key for r in records] == [sent[0].id, later[0].id] and sent[0].id != later[0].id
    assert sent[0].to_dict()["id"] == sent[0].id
    a.close()
    b.close()


def test_a_stale_replica_without_the_reload_would_open_the_incident_again(tmp_path: Path) -> None:
    # the reason reload_model exists: b's memory of churn predates a's windows
    url = f"sqlite:///{tmp_path}/a.db"
    cfg = parse_alerts({"persistence": 3}, "alerts")
    a = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9)
    b = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9)
    b.observe([_breach(0, "ok")])
    assert [n.event for i in range(3) for n in a.observe([_breach(i + 1)])] == ["open"]
    stale = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9)
    stale._tracks = dict(b._tracks)  # what b held in memory before a's windows
    assert [n.event for i in range(4, 7) for n in stale.observe([_breach(i)])] == ["open"]
    b.reload_model("churn")
    assert [n.event for i in range(4, 7) for n in b.observe([_breach(i)])] == []
    for m in (a, b, stale):
        m.close()


def test_the_lease_setting_is_parsed_and_checked_against_the_interval() -> None:
    assert parse_evaluation({}, "evaluation").lease_for() == 60.0
    assert parse_evaluation({"interval": "1m"}, "evaluation").lease_for() == 240.0
    assert parse_evaluation({"lease": "2m"}, "evaluation").lease_for() == 120.0
    with pytest.raises(ConfigError, match=r"evaluation\.lease: '10s' must be longer than evaluation\.interval"):
        parse_evaluation({"lease": "10s"}, "evaluation")
    with pytest.raises(ConfigError, match=r"evaluation\.lease: 'soon' is not a duration"):
        parse_evaluation({"lease": "soon"}, "evaluation")


def test_the_failpoint_hook_is_refused_when_malformed() -> None:
    assert failpoint_from_env("") is None
    with pytest.raises(ValueError, match="MODEL@WINDOW_START=FLAG_FILE"):
        failpoint_from_env("churn=/tmp/x")


def test_a_window_evaluated_but_never_observed_is_observed_by_the_next_owner_once(tmp_path: Path) -> None:
    # a replica died between committing window 2's verdict and its alert state: the next owner
    # finds the stored findings newer than the tracks and observes them before anything else
    url = f"sqlite:///{tmp_path}/a.db"
    cfg = parse_alerts({"persistence": 3}, "alerts")
    a = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9, replica="a")
    assert [n for i in range(2) for n in a.observe([_breach(i)])] == []
    f = _breach(2)
    a.storage.put_records([Record("finding", f.key, f.model, f.window_start, f.to_dict())])
    b = AlertManager(cfg, open_storage(url, (SIZE,)), clock=lambda: 1e9, replica="b")
    caught = b.reload_model("churn")
    assert [(n.event, n.incident["first_window"]) for n in caught] == [("open", T0)]  # type: ignore[index]
    assert b.reload_model("churn") == []  # nothing left to catch up on
    assert [n.event for n in b.observe([_breach(3)])] == []  # the incident is open already
    assert [r.body["replica"] for r in b.storage.get_records(SENT)] == ["b"]
    a.close()
    b.close()
