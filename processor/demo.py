"""``infersight demo``: the whole loop on one machine, no outside services, in about 90 seconds.

1. A reference profile from synthetic training data of a churn model (five numeric features and
   a plan), pushed to a processor started on loopback ports with SQLite in a temporary folder and
   1-second storage windows (5-second drift verdicts, a 10-minute SLO period: production
   keeps the defaults, this is the same machinery on a short clock).
2. A FastAPI model server with infersight's middleware and ``@infersight.monitor``, on loopback,
   exporting OTLP to the processor.
3. A bounded traffic generator posting JSON to the server, in phases: normal traffic; covariate
   drift in two features (and the world's answer to them changes: concept drift); a latency
   regression that breaches the p99 < 100 ms SLO; bad inputs (NaN, missing fields, malformed
   JSON); then the late labels of every call, which show the accuracy drop of the drift phase.
4. What the processor found, read from its API as an operator would: the drifted features and
   since when, the SLO burn alerts, the data-quality findings and the accuracy drop, and the
   dashboard URL. The command exits 1 when something injected was not found (a self-test).

``--duration`` scales every phase (default 90 s); ``--keep-running`` leaves the processor and
the server up to browse until Ctrl-C; ``--keep DIR`` keeps the database and profile.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_parser", "run", "Phase", "PHASES"]

MODEL, VERSION = "churn", "1"
FEATURES = ("tenure", "monthly_charges", "support_calls", "age", "contract_months")
WEIGHTS = np.array([-0.18, 0.105, 1.5, -0.03, -0.18])
BIAS = -2.7
DRIFTED = ("monthly_charges", "support_calls")
SLO_THRESHOLD = 0.1  # seconds: p99 < 100 ms
SLOW = 0.15  # seconds a call takes during the latency regression


@dataclass(frozen=True)
class Phase:
    name: str
    share: float  # of --duration
    what: str


PHASES = (
    Phase("normal", 0.25, "normal traffic"),
    Phase("drift", 0.25, f"covariate drift in {' and '.join(DRIFTED)} (and concept drift)"),
    Phase("latency", 0.2, f"latency regression: every call takes {SLOW * 1000:.0f} ms (SLO: p99 < 100 ms)"),
    Phase("bad-inputs", 0.15, "bad inputs: NaN, missing fields, malformed JSON"),
    Phase("labels", 0.15, "late labels for every call so far"),
)


# -- the model and its world ------------------------------------------------------------------


def make_rows(rng: np.random.Generator, n: int, drift: bool = False) -> list[dict[str, Any]]:
    """``n`` customers; with ``drift``, higher charges and more support calls."""
    tenure = rng.gamma(2.0, 12.0, n)
    charges = rng.normal(95.0 if drift else 65.0, 20.0, n)
    calls = rng.poisson(4.0 if drift else 1.5, n)
    age = rng.normal(45.0, 12.0, n)
    months = rng.choice([1, 12, 24], n, p=[0.5, 0.3, 0.2])
    plans = rng.choice(["free", "basic", "pro"], n, p=[0.3, 0.5, 0.2])
    return [
        {
            "tenure": round(float(a), 2),
            "monthly_charges": round(float(b), 2),
            "support_calls": int(c),
            "age": round(float(d), 1),
            "contract_months": int(e),
            "plan": str(p),
        }
        for a, b, c, d, e, p in zip(tenure, charges, calls, age, months, plans)
    ]


def probability(row: dict[str, Any]) -> float:
    x = np.array([_number(row.get(k), k) for k in FEATURES])
    return float(1.0 / (1.0 + np.exp(-(x @ WEIGHTS + BIAS))))


_MEANS = {"tenure": 24.0, "monthly_charges": 65.0, "support_calls": 1.5, "age": 45.0, "contract_months": 8.5}


def _number(v: Any, name: str) -> float:
    """The model's own imputation: a missing or non-finite value reads as the training mean."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return _MEANS[name]
    return f if math.isfinite(f) else _MEANS[name]


def truth(rng: np.random.Generator, row: dict[str, Any], drift: bool) -> int:
    """What the customer did. In the drift phase the world changed too: the new high-charge
    customers stay (a promotion), so the model's answers go wrong exactly where inputs moved."""
    p = probability(row)
    if drift:
        p = 1.0 - p
    return int(rng.random() < p)


# -- the model server ------------------------------------------------------------------------


class _Server:
    """The FastAPI model server on a loopback port, in a thread."""

    def __init__(self, delay: list[float], reference: Any = None) -> None:
        import uvicorn

        from infersight.processor.demo_app import make_app

        app = make_app(delay, reference, score=probability, model=MODEL, version=VERSION)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


# -- traffic ---------------------------------------------------------------------------------


@dataclass
class _Sent:
    request_id: str
    actual: int
    phase: str


@dataclass
class _Traffic:
    port: int
    rng: np.random.Generator
    sent: list[_Sent] = field(default_factory=list)
    errors: int = 0
    _conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> dict[str, Any] | None:
        for attempt in (0, 1):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self._conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                r = self._conn.getresponse()
                data = r.read()
                if r.status != 200:
                    self.errors += 1
                    return None
                out: dict[str, Any] = json.loads(data)
                return out
            except (OSError, http.client.HTTPException):
                self._conn = None
                if attempt:
                    raise
        return None

    def call(self, row: dict[str, Any], phase: str, drift: bool) -> None:
        got = self.post(json.dumps(row).encode())
        if got is not None and got.get("request_id"):
            self.sent.append(_Sent(got["request_id"], truth(self.rng, row, drift), phase))

    def bad(self, i: int) -> None:
        row = make_rows(self.rng, 1)[0]
        kind = i % 4
        if kind == 0:
            row["monthly_charges"] = float("nan")  # json.dumps writes NaN, as many clients do
            self.call(row, "bad-inputs", False)
        elif kind == 1:
            del row["tenure"]
            del row["age"]
            self.call(row, "bad-inputs", False)
        elif kind == 2:
            self.post(b'{"tenure": 12, "monthly_charges": ')  # malformed: 400 before the model
        else:
            self.call(row, "bad-inputs", False)


def _progress(label: str, seconds: float, stream: Any) -> Iterator[float]:
    """Yield the elapsed share (0..1) until ``seconds`` pass, drawing one progress bar line."""
    start = time.time()
    width = 30
    last = -1
    tty = stream.isatty()
    while True:
        done = min(1.0, (time.time() - start) / seconds) if seconds > 0 else 1.0
        filled = int(done * width)
        if filled != last and (tty or filled == width):
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if done >= 1 else ""
            print(f"\r  {label:<11} [{bar}] {done * 100:3.0f}%", end=end, file=stream, flush=True)
            last = filled
        if done >= 1:
            return
        yield done


# -- what the processor found ------------------------------------------------------------------


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=15) as r:
        return json.loads(r.read())


def _post(url: str, body: Any) -> Any:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


@dataclass
class Found:
    drifted: dict[str, int] = field(default_factory=dict)  # feature -> since (Unix seconds)
    slo_alerts: list[str] = field(default_factory=list)
    data_quality: list[str] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)  # phase -> accuracy
    quality_alerts: list[str] = field(default_factory=list)

    def missing(self) -> list[str]:
        out = [f"drift in {f}" for f in DRIFTED if f not in self.drifted]
        if not any(a.startswith("p99-100ms") for a in self.slo_alerts):
            out.append("the latency SLO burn alert")
        if not self.data_quality:
            out.append("data-quality findings for the bad inputs")
        normal, drift = self.accuracy.get("normal"), self.accuracy.get("drift")
        if normal is None or drift is None or not drift < normal - 0.1 or not self.quality_alerts:
            out.append("the accuracy drop from late labels")
        return out


def _findings(web: str, start: float, end: float, phases: dict[str, tuple[float, float]]) -> Found:
    found = Found()
    body = _get(f"{web}/api/models/{MODEL}/findings?start={int(start)}&end={int(end) + 1}")
    bad_a, bad_b = phases.get("bad-inputs", (0.0, 0.0))
    for f in body["findings"]:
        if f["status"] != "breach" or f.get("version") not in ("", VERSION):
            continue
        if f["kind"] == "drift" and f["subject"] in FEATURES + ("plan",):
            since = f.get("since") or f["window_start"]
            found.drifted[f["subject"]] = min(found.drifted.get(f["subject"], since), since)
        elif f["kind"] == "data_quality" and bad_a - f["window_size"] < f["window_start"] < bad_b:
            found.data_quality.append(f"{f['subject']} ({f.get('cause') or f.get('method')})")
        elif f["kind"] == "quality" and f["subject"] == "accuracy":
            when = time.strftime("%H:%M:%S", time.localtime(f["window_start"]))
            found.quality_alerts.append(f"accuracy {f['statistic']:.2f} in the window at {when}")
    for inc in _get(f"{web}/api/alerts?model={MODEL}&state=all")["incidents"]:
        if inc["policy"].startswith("slo-"):
            found.slo_alerts.append(f"{inc['subjects'][0]} ({inc['severity']}, {inc['state']})")
    for name, (a, b) in phases.items():
        if name in ("normal", "drift"):
            try:
                q = _get(f"{web}/api/models/{MODEL}/quality?start={int(a)}&end={int(b)}")
            except urllib.error.HTTPError:
                continue  # no calls stored for the range (yet)
            acc = (q.get("metrics") or {}).get("accuracy")
            if acc is not None:
                found.accuracy[name] = float(acc)
    found.data_quality = sorted(set(found.data_quality))
    return found


def _config() -> str:
    return f"""
storage: {{window: 1s, rollups: [60s]}}
models:
  "*": {{windows: [5s]}}
evaluation: {{interval: 0.5s, lateness: 1s}}
alerts:
  persistence: 2          # two 5-second windows in a row (the production default is derived)
quality:
  min_labelled: 30
  baseline_windows: 6
  models:
    {MODEL}: {{min: {{accuracy: 0.6}}}}
slo:
  period: 10m
  min_events: 20
  no_data: 1m
  alerts:
    - {{name: fast, severity: page, long: 10s, short: 2s, budget: 5%}}
    - {{name: slow, severity: ticket, long: 60s, short: 10s, budget: 10%}}
  objectives:
    - {{name: p99-100ms, model: {MODEL}, kind: latency, threshold: {SLO_THRESHOLD}s, objective: 99%}}
    - {{name: valid-inputs, model: {MODEL}, kind: data_quality, objective: 99%}}
    - {{name: availability, model: {MODEL}, kind: availability, objective: 99.9%}}
"""


def run(duration: float = 90.0, *, keep: Path | None = None, keep_running: bool = False, out: Any = None) -> int:
    """Run the demo; the exit code (0: everything injected was found)."""
    out = out or sys.stdout
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return _run(keep, duration, keep_running, out)
    with tempfile.TemporaryDirectory(prefix="infersight-demo-") as tmp:
        return _run(Path(tmp), duration, keep_running, out)


def _run(work: Path, duration: float, keep_running: bool, out: Any) -> int:
    from infersight._extras import needs_extra

    with needs_extra("demo", "infersight demo"):
        import fastapi  # noqa: F401  (the model server; imported here to fail early)

        import infersight
        from infersight.processor.service import start_local
        from infersight.stats.reference import Reference

    rng = np.random.default_rng(2027)
    say: Callable[[str], None] = lambda text: print(text, file=out, flush=True)  # noqa: E731
    reference = Reference.from_data(make_rows(rng, 20_000), model=MODEL)
    reference.save(work / "reference.json")
    processor = start_local(work, _config())
    web = f"http://127.0.0.1:{processor.ports['web']}"
    delay = [0.0]
    server: _Server | None = None
    try:
        _post(f"{web}/api/models/{MODEL}/reference", reference.to_dict())
        infersight.configure(
            service_name="churn-api",
            endpoint=f"http://127.0.0.1:{processor.ports['otlp_http']}",
            protocol="http/protobuf",
            log_output="none",
            metric_export_interval=1,
        )
        server = _Server(delay, reference)
        server.start()
        say(f"infersight demo: processor {web} (SQLite in {work}), model server http://127.0.0.1:{server.port}")
        traffic = _Traffic(server.port, rng)
        phases: dict[str, tuple[float, float]] = {}
        t_start = time.time()
        for phase in PHASES:
            seconds = max(2.0, phase.share * duration)
            say(f"- {phase.what}")
            begin = time.time()
            if phase.name == "latency":
                delay[0] = SLOW
            i = 0
            for share in _progress(phase.name, seconds, out):
                if phase.name == "labels":
                    # labels arrive late, in order, spread over the phase
                    due = int(share * len(traffic.sent))
                    while i < due:
                        s = traffic.sent[i]
                        infersight.record_feedback(s.request_id, s.actual, model=MODEL, version=VERSION)
                        i += 1
                    row = make_rows(rng, 1)[0]
                    traffic.call(row, "after", False)
                elif phase.name == "bad-inputs":
                    traffic.bad(i)
                    i += 1
                else:
                    traffic.call(make_rows(rng, 1, drift=phase.name == "drift")[0], phase.name, phase.name == "drift")
                time.sleep(0.01)
            if phase.name == "labels":
                for s in traffic.sent[i:]:
                    if s.phase != "after":
                        infersight.record_feedback(s.request_id, s.actual, model=MODEL, version=VERSION)
            delay[0] = 0.0
            phases[phase.name] = (begin, time.time())
        infersight.flush()
        say("waiting for the processor to judge the last windows ...")
        time.sleep(3.0)
        end = time.time()
        found = _findings(web, t_start, end, phases)
        deadline = time.time() + 20
        while found.missing() and time.time() < deadline:
            time.sleep(1.0)
            found = _findings(web, t_start, time.time(), phases)
        _summary(say, found, phases, web, len(traffic.sent), traffic.errors)
        missing = found.missing()
        if missing:
            say(f"\nNOT FOUND: {'; '.join(missing)}")
        if keep_running:
            say(f"\nkept running: dashboard {web}/ , model server http://127.0.0.1:{server.port} ; Ctrl-C stops")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
        return 1 if missing else 0
    finally:
        infersight.shutdown()
        if server is not None:
            server.stop()
        processor.stop()


def _summary(
    say: Callable[[str], None],
    found: Found,
    phases: dict[str, tuple[float, float]],
    web: str,
    calls: int,
    refused: int,
) -> None:
    def at(t: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(t))

    say(f"\nwhat the processor found ({calls} calls answered, {refused} refused as malformed):")
    drift_began = phases.get("drift", (0.0, 0.0))[0]
    moved = ", ".join(f"{f} since the window at {at(s)}" for f, s in sorted(found.drifted.items()))
    say(f"  drift:        {moved or 'none'} (the drift phase began at {at(drift_began)})")
    say("  SLO alerts:   " + (", ".join(found.slo_alerts) or "none"))
    say("  data quality: " + (", ".join(found.data_quality[:6]) or "none"))
    acc = ", ".join(f"{p} {a:.2f}" for p, a in found.accuracy.items())
    first = f"; {found.quality_alerts[0]}" if found.quality_alerts else ""
    say(f"  accuracy:     {acc or 'no labels joined'} (on late labels){first}")
    say(f"\ndashboard: {web}/   alerts: {web}/api/alerts   SLOs: {web}/api/slo")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="run the whole loop on this machine: processor, model server, traffic, findings",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument(
        "--duration", type=float, default=90.0, metavar="SECONDS", help="length of the traffic phases (default 90)"
    )
    p.add_argument("--keep-running", action="store_true", help="leave the processor and model server up until Ctrl-C")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep the database and reference profile in DIR")
    p.set_defaults(func=_main)
    return p


def _main(args: argparse.Namespace) -> int:
    if args.duration < 10:
        print(f"infersight demo: --duration {args.duration:g} is too short; use at least 10 seconds", file=sys.stderr)
        return 2
    return run(args.duration, keep=args.keep, keep_running=args.keep_running)
