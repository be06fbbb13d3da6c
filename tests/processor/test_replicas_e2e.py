"""Two real ``infersight processor`` replicas on one real PostgreSQL, OTLP sent to both in turn
(as the collector's load-balancing exporter does), alerts to a webhook on loopback: every
(model, window) is evaluated exactly once, every incident is announced exactly once, and when
the replica evaluating a model is killed (SIGKILL) in the middle of a window, the other one
takes the model over after the lease time and finishes it, still once.

Windows are minutes in the past (so all are closed at once); a model's windows travel in one
OTLP request, the requests alternating between the replicas. Two of the four models shift their
feature ``x`` by 3 standard deviations from the fifth window on: with ``persistence: 2`` each
raises one incident. The kill is made deterministic by the processor's failpoint hook
(``INFERSIGHT_FAILPOINT_EVALUATE``): the replica that reaches the chosen window first writes
its pid to a flag file and blocks there until the test kills it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.processor.alerts.manager import SENT
from infersight.processor.evaluate.loop import HISTORY, STATE, stored_findings
from infersight.processor.storage import open_storage
from infersight.stats.sketch import ExpHistogram
from support.webhook import Receiver

SIZE = 60
WINDOWS = 8  # windows with data per model; the window after them is judged too (no data yet)
SHIFT_FROM = 4  # drifting models move from this window on
MODELS = ("alpha", "bravo", "charlie", "delta")
DRIFTING = ("bravo", "delta")
LEASE = 4.0


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Replica:
    """One ``python -m infersight.processor`` process on its own loopback ports."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        self.ports = dict(zip(("otlp_grpc", "otlp_http", "web"), _free_ports(3)))
        self.log = log
        cmd = [sys.executable, "-m", "infersight.processor", "--config", str(config)]
        for name, port in self.ports.items():
            cmd += [f"--{name.replace('_', '-')}", f"127.0.0.1:{port}"]
        self.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, **env})

    def wait_up(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"processor exited: {self.log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.ports['web']}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"processor did not come up: {self.log.read_text()}")

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.ports['web']}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def post(self, body: bytes) -> None:
        r = httpx.post(
            f"http://127.0.0.1:{self.ports['otlp_http']}/v1/metrics",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def model_request(model: str, t0: int, rng: np.random.Generator) -> bytes:
    """One OTLP request with every window of ``model``: delta ``ml.feature.value`` histograms of
    features x (shifted from window SHIFT_FROM on for drifting models) and y (steady)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = f"svc-{model}"
    eh = rm.scope_metrics.add().metrics.add(name="ml.feature.value").exponential_histogram
    eh.aggregation_temporality = 1  # delta
    for w in range(WINDOWS):
        t = (t0 + w * SIZE + SIZE // 2) * 10**9
        for feature in ("x", "y"):
            shift = 3.0 if feature == "x" and model in DRIFTING and w >= SHIFT_FROM else 0.0
            s = ExpHistogram.from_values(rng.normal(shift, 1.0, 400))
            dp = eh.data_points.add(
                start_time_unix_nano=t - 10**9,
                time_unix_nano=t,
                count=s.count,
                sum=s.sum,
                scale=s.scale,
                zero_count=s.zero_count,
                min=s.min,
                max=s.max,
            )
            for sign in ("positive", "negative"):
                b = getattr(s, sign)
                if b.counts.size:
                    getattr(dp, sign).offset = b.offset
                    getattr(dp, sign).bucket_counts.extend(b.counts.tolist())
            for k, v in {"ml.model.name": model, "ml.model.version": "1", "ml.feature.name": feature}.items():
                dp.attributes.add(key=k).value.string_value = v
    return req.SerializeToString()


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def cluster(tmp_path: Path, pg_database: Callable[[], str], webhook: Receiver) -> Iterator[dict[str, Any]]:
    """Config for replicas on one fresh PostgreSQL database; the replicas started are stopped
    (SIGTERM) at the end."""
    db = pg_database()
    config = tmp_path / "processor.yaml"
    # JSON is YAML: the processor reads this as its config file
    config.write_text(
        json.dumps(
            {
                "storage": {"url": db, "window": f"{SIZE}s", "maintenance_interval": "1s"},
                "models": {"*": {"windows": [f"{SIZE}s"], "reference": {"past_window": f"{SHIFT_FROM * SIZE}s"}}},
                "evaluation": {
                    "interval": "300ms",
                    "lateness": 0,
                    "backfill": "2h",
                    "no_data_for": "1s",
                    "lease": f"{LEASE}s",
                    "multivariate": False,
                },
                "alerts": {
                    "persistence": 2,
                    "channels": {"hook": {"type": "webhook", "url": webhook.url, "backoff": "10ms"}},
                },
            }
        )
    )
    started: list[Replica] = []

    def start(n: int, env: dict[str, str] | None = None) -> list[Replica]:
        new = [Replica(config, tmp_path / f"replica{len(started) + i}.log", env or {}) for i in range(n)]
        started.extend(new)
        for r in new:
            r.wait_up()
        return new

    now = time.time()
    t0 = int(now // SIZE) * SIZE - 30 * SIZE  # half an hour ago: every window is closed
    yield {"db": db, "start": start, "t0": t0}
    for r in started:
        r.stop()


def send_alternating(replicas: list[Replica], t0: int) -> None:
    rng = np.random.default_rng(15)
    for i, model in enumerate(MODELS):
        replicas[i % len(replicas)].post(model_request(model, t0, rng))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def expected_windows(t0: int) -> set[tuple[str, int]]:
    # every window with data, and the first one after the data (judged as a window without data)
    return {(m, t0 + w * SIZE) for m in MODELS for w in range(WINDOWS + 1)}


def states(db: str) -> dict[tuple[str, int], dict[str, Any]]:
    st = open_storage(db, (SIZE,))
    try:
        return {(r.model, int(r.time)): r.body for r in st.get_records(STATE)}
    finally:
        st.close()


def settle(replicas: list[Replica], passes: int = 4) -> None:
    """Let every live replica run a few more passes (nothing more may happen in them)."""
    base = [r.metric("infersight_processor_evaluation_passes_total") for r in replicas]
    for r, b in zip(replicas, base):
        wait_for("more passes", lambda r=r, b=b: r.metric("infersight_processor_evaluation_passes_total") >= b + passes)


def check_store(db: str, t0: int) -> dict[str, Any]:
    """Each (model, window) judged once: one state at revision 0, no superseded verdicts; and the
    notifications recorded as sent."""
    st = open_storage(db, (SIZE,))
    try:
        got = {(r.model, int(r.time)): r.body for r in st.get_records(STATE)}
        assert set(got) == expected_windows(t0)
        assert {b["revision"] for b in got.values()} == {0}
        assert st.get_records(HISTORY) == []
        # the current verdicts, one per finding (a window pass stores its findings in one record)
        current = [r for m in sorted({m for m, _ in got}) for r in stored_findings(st, m)]
        drift = [r.body for r in current if r.body["kind"] == "drift" and r.body["subject"] == "x"]
        breaching = {(b["model"], b["window_start"]) for b in drift if b["status"] == "breach"}
        assert {m for m, _ in breaching} == set(DRIFTING)
        sent = [r.body for r in st.get_records(SENT)]
        return {"states": got, "sent": sent}
    finally:
        st.close()


def test_two_replicas_share_the_models_evaluate_each_window_once_and_send_each_alert_once(
    cluster: dict[str, Any], webhook: Receiver
) -> None:
    replicas = cluster["start"](2)
    t0 = cluster["t0"]
    send_alternating(replicas, t0)
    wait_for("every window evaluated", lambda: set(states(cluster["db"])) == expected_windows(t0))
    webhook.wait("bodies", len(DRIFTING), timeout=60)
    settle(replicas)
    store = check_store(cluster["db"], t0)
    # one open per drifting model, recorded once, nothing else sent
    assert sorted((b["event"], b["model"]) for b in webhook.bodies) == [("open", m) for m in DRIFTING]
    assert webhook.attempts == len(DRIFTING)
    assert sorted(b["id"] for b in webhook.bodies) == sorted(s["id"] for s in store["sent"])
    # evaluations counted by the replicas themselves: one per window in all, shared by both
    evaluated = [r.metric("infersight_processor_windows_evaluated_total") for r in replicas]
    assert sum(evaluated) == len(expected_windows(t0)), evaluated
    assert all(evaluated), f"one replica evaluated everything: {evaluated}"
    # and no model's pass failed (on PostgreSQL the late-label count once did, every pass)
    assert [r.metric("infersight_processor_evaluation_errors_total") for r in replicas] == [0, 0]
    senders = {s["replica"] for s in store["sent"]}
    assert len(senders) >= 1 and all(senders)


def test_a_replica_killed_mid_evaluation_is_taken_over_after_the_lease_and_nothing_runs_twice(
    cluster: dict[str, Any], webhook: Receiver, tmp_path: Path
) -> None:
    t0 = cluster["t0"]
    victim_model, victim_window = "bravo", t0 + (SHIFT_FROM + 1) * SIZE  # where bravo's incident opens
    flag = tmp_path / "failpoint.pid"
    env = {"INFERSIGHT_FAILPOINT_EVALUATE": f"{victim_model}@{victim_window}={flag}"}
    replicas = cluster["start"](2, env)
    send_alternating(replicas, t0)
    wait_for("a replica to stop in the middle of bravo's window", flag.exists)
    wait_for("the flag's pid", lambda: flag.read_text().strip().isdigit())
    pid = int(flag.read_text())
    killed = next(r for r in replicas if r.proc.pid == pid)
    survivor = next(r for r in replicas if r is not killed)
    # what the killed replica committed for its models: taken while it is stopped at the
    # failpoint, so nobody else can have written them (it still holds their leases)
    st = open_storage(cluster["db"], (SIZE,))
    try:
        owned = {x.name.split(":", 1)[1] for x in st.leases("model:") if x.owner.split(":")[1] == str(pid)}
    finally:
        st.close()
    assert victim_model in owned
    before = states(cluster["db"])
    by_killed = {k for k in before if k[0] in owned}
    assert (victim_model, victim_window) not in before
    assert (victim_model, victim_window - SIZE) in before  # bravo stopped half way through
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(30)
    # the survivor takes bravo over once the lease has run out and finishes it
    wait_for("every window evaluated", lambda: set(states(cluster["db"])) == expected_windows(t0))
    webhook.wait("bodies", len(DRIFTING), timeout=60)
    settle([survivor])
    store = check_store(cluster["db"], t0)
    assert sorted((b["event"], b["model"]) for b in webhook.bodies) == [("open", m) for m in DRIFTING]
    assert webhook.attempts == len(DRIFTING)
    assert [s["replica"].split(":")[1] for s in store["sent"] if s["model"] == victim_model] == [str(survivor.proc.pid)]
    # exactly once in all: the survivor evaluated everything the killed replica did not commit
    evaluated = survivor.metric("infersight_processor_windows_evaluated_total")
    assert evaluated == len(expected_windows(t0)) - len(by_killed), (evaluated, sorted(by_killed))
    assert survivor.metric("infersight_processor_leases_acquired_total") >= 1 + len(owned)
    assert survivor.metric("infersight_processor_evaluation_errors_total") == 0
