"""The multivariate (MMD) test's CPU per window: every permutation vs Besag-Clifford stopping.

One core (``sched_setaffinity``), a reference of 10 numeric features (5,000 rows, its
multivariate sample of 500), alpha 0.001 with 1,999 permutations (the processor's default),
null windows of 50-500 rows, each of a new size (so the permutations are drawn afresh, as in the
processor), a fresh ``MMD`` per window; the median CPU time of ``score`` over 12 windows.

Run: python bench/mmd.py
"""

from __future__ import annotations

import os
import time

import numpy as np

from infersight.stats.multivariate import MMD, reference_sample


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = np.random.default_rng(4)
    names = [f"x{i}" for i in range(10)]
    ref = reference_sample({n: rng.normal(size=5000) for n in names})
    for n in (50, 100, 200, 500):
        med = {}
        for stop in (None, 10):
            took = []
            for k in range(12):
                m = MMD(alpha=0.001, permutations=1999, stop_after=stop).fit(ref)
                w = {c: rng.normal(size=n + k) for c in names}
                t = time.process_time()
                m.score(w)
                took.append(time.process_time() - t)
            med[stop] = float(np.median(took))
        print(
            f"window of {n} rows, 10 features, alpha 0.001 (1999 permutations): every permutation "
            f"{med[None] * 1e3:.1f} ms CPU, sequential (stop_after=10) {med[10] * 1e3:.1f} ms CPU (median of 12)"
        )


if __name__ == "__main__":
    main()
