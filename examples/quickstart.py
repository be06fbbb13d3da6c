"""The whole loop on one machine, no outside services: train → reference → serve → alert.

1. Builds a reference profile from synthetic training data.
2. Starts the infersight processor on loopback ports (SQLite in a temp dir, 1-second windows
   so the demo takes seconds) and pushes the reference to it.
3. Serves a small numpy model under ``@infersight.monitor``, exporting OTLP to the processor:
   first healthy traffic, then a broken pipeline (income sent in cents, a new plan).
4. The processor judges every closed window by itself: it prints its verdicts per window
   (``/api/models/churn/drift``) and the one alert it raised (``/api/alerts``), with the
   cause, since when, and the trace ID of a request that drove it.

Run: python examples/quickstart.py   (about 15 seconds; --keep DIR keeps the reference
profile and the processor's database in DIR, otherwise they go in a temp folder removed at exit)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

import infersight
from infersight.processor.service import start_local
from infersight.stats.reference import Reference

WEIGHTS = {"income": 0.00002, "tenure": -0.05, "support_calls": 0.4}
PLANS = ["free", "basic", "pro"]


def make_rows(rng: np.random.Generator, n: int, broken: bool = False) -> list[dict]:
    income = rng.lognormal(10.5, 0.4, n) * (100 if broken else 1)  # broken: cents, not dollars
    plans = rng.choice(PLANS + (["enterprise"] if broken else []), n)
    return [
        {"income": float(i), "tenure": float(t), "support_calls": int(c), "plan": str(p)}
        for i, t, c, p in zip(income, rng.gamma(2.0, 12.0, n), rng.poisson(1.5, n), plans)
    ]


@infersight.monitor(model="churn", version="3")
def predict(row: dict) -> float:
    z = sum(WEIGHTS[k] * row[k] for k in WEIGHTS) - 1.0 + (0.3 if row["plan"] == "free" else 0.0)
    return float(1.0 / (1.0 + np.exp(-z)))


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", metavar="DIR", type=Path, help="write the reference profile and database here and keep them"
    )
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.keep)
    with tempfile.TemporaryDirectory(prefix="infersight-quickstart-") as tmp:
        return run(Path(tmp))


def run(work: Path) -> int:
    rng = np.random.default_rng(7)

    reference = Reference.from_data(make_rows(rng, 20_000), model="churn")
    reference.save(work / "reference.json")
    print(f"reference profile: {len(reference.features)} features -> {work / 'reference.json'}")

    # The processor's config: 1-second windows judged against the pushed reference as soon as
    # they close (a production setup keeps the defaults: 1-minute storage, hourly verdicts).
    # (the log channel's JSON lines are left out: this script prints the alerts from the API)
    processor = start_local(
        work,
        "storage: {window: 1s, rollups: [60s]}\n"
        "models: {'*': {windows: [1s]}}\n"
        "evaluation: {interval: 0.25s, lateness: 1s}\n",
    )
    web = f"http://127.0.0.1:{processor.ports['web']}"
    try:
        post(f"{web}/api/models/churn/reference", reference.to_dict())
        infersight.configure(
            service_name="churn-api",
            endpoint=f"http://127.0.0.1:{processor.ports['otlp_http']}",
            protocol="http/protobuf",
            log_output="none",
            metric_export_interval=1,
            sample_ratio=0.2,  # bursts of 1,000 calls traced in full would overflow the span queue
        )
        # One burst of calls per 1-second window, each started just after a window boundary:
        # three windows of healthy traffic, then four of the broken pipeline.
        windows = []
        for i in range(7):
            time.sleep(1.05 - time.time() % 1)
            windows.append(int(time.time()))
            for row in make_rows(rng, 1000, broken=i >= 3):
                predict(row)
            infersight.flush()
        print("sent 7,000 calls in 7 windows: 3 healthy, then 4 with the broken pipeline")

        # The processor's evaluation loop judges each window once it has closed (plus 1 s of
        # lateness) and raises an alert once a feature has drifted in enough windows in a row.
        deadline = time.time() + 30
        while time.time() < deadline and not get(f"{web}/api/alerts?state=open")["incidents"]:
            time.sleep(0.25)
        report = get(f"{web}/api/models/churn/drift?start={windows[0]}&end={windows[-1] + 1}")
        print("\nthe processor's verdicts, window by window:")
        for i, w in enumerate(report["windows"]):
            moved = {k: f for k, f in w["features"].items() if f["drift"]}
            text = ", ".join(f"{k} ({f['cause']})" for k, f in sorted(moved.items())) or "ok"
            print(f"  {w['start']} {'broken ' if i >= 3 else 'healthy'} {w['rows']:5d} rows: {text}")
        print("\nalerts:")
        for incident in get(f"{web}/api/alerts?state=open")["incidents"]:
            top = ", ".join(f"{t['subject']} ({t['cause']})" for t in incident["top"])
            print(f"  [{incident['severity']}] {incident['policy']} on {incident['model']}: {top}")
            print(f"    since {incident['since_iso']}; likely {incident['cause_label']}")
            print(f"    check first: {incident['check_first']}")
            if incident["evidence"]:
                ev = incident["evidence"][0]
                print(f"    evidence: trace {ev['trace_id']} (request {ev['request_id']})")
    finally:
        infersight.shutdown()
        processor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
