"""What per-model leases cost an evaluation pass: the same stored windows (SQLite file) judged
by a loop alone (``ownership=None``) and by one that holds each model's lease, its writes fenced
(one lease renewal inside every write transaction), side by side, alternating, CPU time of the
pass (``time.process_time``). Building the store is outside the timed part.

    python bench/leases.py [--models 20] [--windows 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from infersight.processor.evaluate.loop import EvaluationLoop
from infersight.processor.evaluate.ownership import Ownership
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.storage import FEATURE, Storage, WindowKey, WriteBatch, open_storage
from infersight.stats.windows import FeatureWindow

SIZE, T0 = 60, 1_700_006_400


def build(url: str, models: int, windows: int) -> Storage:
    st = open_storage(url, (SIZE, 3600))
    rng = np.random.default_rng(0)
    for m in range(models):
        b = WriteBatch()
        for w in range(windows):
            for f in ("x", "y", "z"):
                col = rng.normal(size=300)
                b.windows[WindowKey(f"m{m}", "1", FEATURE, f, SIZE, T0 + w * SIZE)] = FeatureWindow.from_column(
                    col, "numeric"
                ).to_stats()
        st.write(b)
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--windows", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    res: dict[str, list[float]] = {"alone": [], "leases": []}
    for _ in range(a.rounds):
        for kind in res:
            st = build(f"sqlite:///{tempfile.mkdtemp()}/s.db", a.models, a.windows)
            loop = EvaluationLoop(
                st,
                parse_models({"*": {"windows": ["1m"]}}, "models"),
                parse_evaluation(
                    {"lateness": 0, "backfill": "1d", "no_data_for": "1m", "multivariate": False}, "evaluation"
                ),
                on_findings=lambda f: None,
                ownership=Ownership(st, 60, replica="r") if kind == "leases" else None,
            )
            t = time.process_time()
            loop.run_once(now=T0 + (a.windows + 1) * SIZE)
            res[kind].append(time.process_time() - t)
            st.close()
    for kind, v in res.items():
        print(
            f"{kind:7s} CPU s per pass ({a.models} models x {a.windows + 1} windows x 3 features): "
            + ", ".join(f"{x:.2f}" for x in v)
        )


if __name__ == "__main__":
    main()
