"""What ``@monitor(slices=[...])`` costs a call, side by side in one run. Prints, asserts nothing.

A 20-feature row plus a ``region`` input (4 values), ``exporter="none"`` (the request path and
the statistics work in the SDK's threads, no export), monitored without slices and with
``slices=["region"]``, as one row (a dict), a 64-row DataFrame and a 1,000-row DataFrame;
infersight's own cost per call (monitored minus the bare predict, best of 5 loops, each loop
ending with a flush so the statistics work is in), and the ratio with slices ÷ without.

Run: python bench/slices.py [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import overhead  # bench/overhead.py: the same timer and trivial model as the shapes table
import pandas as pd

import infersight

FEATURES = [f"x{i}" for i in range(20)]
REGIONS = np.array(["eu", "us", "apac", "latam"], dtype=object)


def _inputs(rng: np.random.Generator) -> dict[str, Any]:
    def frame(n: int) -> pd.DataFrame:
        cols: dict[str, Any] = {"region": rng.choice(REGIONS, n)}
        cols.update({k: rng.normal(size=n) for k in FEATURES})
        return pd.DataFrame(cols)

    row = {"region": "eu", **{k: float(v) for k, v in zip(FEATURES, rng.normal(size=20))}}
    return {"one-row dict": row, "DataFrame x 64": frame(64), "DataFrame x 1,000": frame(1000)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    args = ap.parse_args()
    if args.clock == "cpu":
        overhead._CLOCK = time.process_time
    infersight.configure(exporter="none", log_output="none", payload_sample_rate=0.0)
    rng = np.random.default_rng(0)
    plain = infersight.monitor(model="plain", version="1")(overhead._predict)
    sliced = infersight.monitor(model="sliced", version="1", slices=["region"])(overhead._predict)
    print(f"slices=['region'] (4 values), 20 features, exporter=none, {args.clock} clock; µs a call")
    print(f"   {'input':<18} {'bare':>8} {'ours':>9} {'ours, sliced':>13}   sliced ÷ not")
    for shape, x in _inputs(rng).items():
        bare = overhead._time(overhead._predict, x)
        a = overhead._time(plain, x, settle=infersight.flush) - bare
        b = overhead._time(sliced, x, settle=infersight.flush) - bare
        print(f"   {shape:<18} {bare:>7.1f} {a:>8.1f} {b:>12.1f}   {b / a:5.2f}")
    infersight.shutdown()


if __name__ == "__main__":
    main()
