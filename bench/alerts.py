"""The alert engine's share of one evaluation pass: ``AlertManager.observe`` over 100 models x
100 drift findings (issue 14's pass), on a SQLite file store, default policies, log channel
silenced.

Every tenth model has three breaching features every window (so 10 incidents stay open and
their state is written each window); the rest are ok (the quiet steady state writes nothing).
Building the findings is outside the timed part. Prints each pass's wall time, the median and
the peak RSS.

    python bench/alerts.py [--models 100] [--features 100] [--windows 10]
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import time

from infersight.processor.alerts import AlertManager, parse_alerts
from infersight.processor.evaluate.findings import Finding
from infersight.processor.storage import open_storage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--windows", type=int, default=10)
    args = ap.parse_args()
    logging.getLogger("infersight.alerts").disabled = True
    with tempfile.TemporaryDirectory() as d:
        store = open_storage(f"sqlite:///{d}/alerts.db", (60, 3600, 86400))
        mgr = AlertManager(parse_alerts({}, "alerts"), store)
        passes = []
        for w in range(args.windows):
            batches = [
                [
                    Finding(
                        model=f"m{m}",
                        version="1",
                        window_size=60,
                        window_start=60 * w,
                        kind="drift",
                        subject=f"f{k}",
                        status="breach" if m % 10 == 0 and k < 3 else "ok",
                        statistic=0.3 if m % 10 == 0 and k < 3 else 0.01,
                        threshold=0.1,
                        p_value=1e-3,
                        cause="distribution_shift",
                    )
                    for k in range(args.features)
                ]
                for m in range(args.models)
            ]
            t0 = time.perf_counter()
            for fs in batches:
                mgr.observe(fs)
            passes.append(time.perf_counter() - t0)
        mgr.close()
        store.close()
    print(f"observe, {args.models} models x {args.features} findings per pass, {args.windows} passes")
    print("per pass (s):", " ".join(f"{p:.3f}" for p in passes))
    print(
        f"median {statistics.median(passes):.3f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print(f"notifications: {mgr.stats()['notifications']}")


if __name__ == "__main__":
    main()
