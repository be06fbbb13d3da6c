"""The whole loop on one machine, no outside services: train → reference → serve → drift.

1. Builds a reference profile (and schema) from synthetic training data.
2. Starts the infersight processor on loopback ports (SQLite in a temp dir).
3. Serves a small numpy model under ``@infersight.monitor``, exporting OTLP to the processor:
   first healthy traffic, then a broken pipeline (income sent in cents, a new plan).
4. Reads the merged statistics back from the processor's API and scores drift per feature
   from the stored sketches against the reference, with cause hints.

Run: python examples/quickstart.py   (takes a few seconds; --keep DIR keeps the reference
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
from infersight.processor.config import load_config
from infersight.processor.service import Processor
from infersight.stats.drift import DriftPolicy
from infersight.stats.reference import Reference
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import FeatureWindow

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

    config = load_config(
        None,
        {
            "db": f"sqlite:///{work}/infersight.db",
            "window": "1s",
            "otlp_grpc": "127.0.0.1:0",
            "otlp_http": "127.0.0.1:0",
            "web": "127.0.0.1:0",
        },
    )
    processor = Processor(config)
    processor.start()
    web = f"http://127.0.0.1:{processor.ports['web']}"
    try:
        infersight.configure(
            service_name="churn-api",
            endpoint=f"http://127.0.0.1:{processor.ports['otlp_http']}",
            protocol="http/protobuf",
            log_output="none",
            metric_export_interval=1,
            sample_ratio=0.2,  # a 3000-call burst traced in full would overflow the span queue
        )
        t0 = time.time()
        for row in make_rows(rng, 3000):
            predict(row)
        infersight.flush()
        # Start the broken traffic on a fresh 1 s window, so the two phases never share one.
        t1 = int(time.time()) + 1
        time.sleep(t1 - time.time() + 0.05)
        for row in make_rows(rng, 3000, broken=True):
            predict(row)
        infersight.flush()
        t2 = time.time() + 1

        models = get(f"{web}/api/models")["models"]
        print("processor sees models:", [m["model"] for m in models])
        policy = DriftPolicy()
        for label, start, end in (("healthy traffic", int(t0), t1), ("broken pipeline", t1, t2)):
            print(f"\n{label}:")
            for name, prof in reference.features.items():
                f = get(f"{web}/api/models/churn/features/{name}?start={start}&end={end:.0f}")
                sketch = ExpHistogram.from_dict(f["sketch"]) if f.get("sketch") else None
                window = FeatureWindow(
                    kind=prof.kind,
                    rows=f["count"] + f["missing_total"],
                    missing=f["missing"],
                    sketch=sketch,
                    categories=f["categories"] or None,
                )
                r = policy.score_feature(prof, window)
                verdict = "DRIFT" if r.drift else "ok"
                print(
                    f"  {name:14s} {r.method:16s} statistic={r.statistic:9.4f} threshold={r.threshold:7.4f} "
                    f"{verdict:5s} {r.cause or ''}"
                )
    finally:
        infersight.shutdown()
        processor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
