"""Traffic for the compose stack's example model server (examples/fastapi_app.py).

Pushes a reference profile for the ``churn`` model to the processor (so drift is judged from the
first window, not a day later), then posts customers to ``/predict`` at a steady rate; after
``--drift-after`` seconds two features move (monthly charges up, more support calls), which the
processor reports as drift. Every tenth request ID is printed: look it up in Jaeger (see
collector-config/README.md).

    python collector-config/loadgen.py --target http://127.0.0.1:8000 --processor http://127.0.0.1:8318
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from infersight.stats.reference import Reference

FEATURES = ("tenure", "monthly_charges", "support_calls", "age", "contract_months")


def customers(rng: np.random.Generator, n: int, drifted: bool) -> list[dict[str, float]]:
    """``n`` customers; ``drifted`` moves monthly charges and support calls."""
    charges = rng.normal(85.0 if drifted else 65.0, 15.0, n)
    calls = rng.poisson(3.5 if drifted else 1.5, n)
    return [
        {
            "tenure": float(rng.integers(1, 72)),
            "monthly_charges": float(round(charges[i], 2)),
            "support_calls": int(calls[i]),
            "age": float(rng.integers(18, 80)),
            "contract_months": int(rng.choice([1, 12, 24])),
        }
        for i in range(n)
    ]


def post(url: str, body: Any, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


def wait_for(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise SystemExit(f"loadgen: {url} did not answer; is the stack up (docker compose ps)?") from None
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="http://model-server:8000", help="the model server's base URL")
    ap.add_argument("--processor", default="http://processor:8318", help="the processor's web base URL")
    ap.add_argument("--rate", type=float, default=5.0, help="requests per second (default 5)")
    ap.add_argument("--drift-after", type=float, default=600.0, help="seconds of normal traffic first (default 600)")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: never)")
    args = ap.parse_args(argv)

    deadline = time.monotonic() + 120
    wait_for(f"{args.processor}/healthz", deadline)
    wait_for(f"{args.target}/healthz", deadline)
    rng = np.random.default_rng(7)
    rows = customers(rng, 5000, drifted=False)
    ref = Reference.from_data({f: np.array([r[f] for r in rows], dtype=float) for f in FEATURES}, model="churn")
    status, _ = post(f"{args.processor}/api/models/churn/reference", ref.to_dict(), timeout=60)
    print(f"loadgen: reference for churn pushed ({status})", flush=True)

    start = time.monotonic()
    sent = 0
    while not args.duration or time.monotonic() - start < args.duration:
        drifted = time.monotonic() - start >= args.drift_after
        try:
            _, answer = post(f"{args.target}/predict", customers(rng, 1, drifted)[0])
            sent += 1
            if sent % 10 == 1:
                print(f"loadgen: request {answer.get('request_id')} drifted={drifted}", flush=True)
        except (urllib.error.URLError, OSError) as exc:
            print(f"loadgen: {exc}", file=sys.stderr, flush=True)
        time.sleep(1.0 / args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
