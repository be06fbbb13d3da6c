"""Profile + drift time and verdicts: infersight versus Evidently's DataDriftPreset (issue 4).

Data: 100 numeric + 20 categorical features, a 50k-row reference, 10 windows of 5000 rows.
Windows 0-4 come from the reference distribution; in windows 5-9 numeric features 0-9 shift
by 0.5 sigma, numeric 10-14 are multiplied by 1000 (a unit bug), numeric 15-19 by 1.05 (a
harmless drift) and categorical 0-4 move 30% of one level's share. Both tools get the same
data (the same seed), each timed cold in a fresh process of its own: from importing the tool to
the last verdict (data generation and, for Evidently, building the pandas frames are outside
the timed part); ``--warm`` adds a second, warm run in each process. We report those times and
the per-(window, feature) verdict agreement, with the disagreements listed.

Evidently lives only in the benchmark's own venv, never as a project dependency:

    python -m venv /tmp/bench-evidently
    /tmp/bench-evidently/bin/pip install -c constraints.txt evidently 'pandas<3' -e .   # Evidently 0.7 needs pandas 2
    python bench/drift.py --evidently-python /tmp/bench-evidently/bin/python

Without Evidently the script prints our own timings only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

N_NUM, N_CAT, REF_ROWS, WIN_ROWS, WINDOWS = 100, 20, 50_000, 5_000, 10


def make(n: int, rng: np.random.Generator, drift: bool) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i in range(N_NUM):
        x = rng.normal(i, 1 + i % 5, n) if i % 2 == 0 else rng.lognormal(1 + i % 3, 0.5, n)
        if drift and i < 10:
            x = x + 0.5 * (1 + i % 5 if i % 2 == 0 else np.std(x))
        elif drift and i < 15:
            x = x * 1000
        elif drift and i < 20:
            x = x * 1.05
        cols[f"num_{i}"] = x
    for j in range(N_CAT):
        k = 3 + j % 8
        p = np.linspace(1, 2, k)
        p /= p.sum()
        if drift and j < 5:
            p = p.copy()
            p[0] *= 1.3
            p /= p.sum()
        cols[f"cat_{j}"] = np.array([f"v{v}" for v in rng.choice(k, n, p=p)], dtype=object)
    return cols


def ours(ref_cols: dict[str, np.ndarray], windows: list[dict[str, np.ndarray]]) -> list[dict[str, bool]]:
    from infersight.stats.drift import DriftPolicy
    from infersight.stats.reference import Reference

    ref = Reference.from_data(ref_cols, model="bench", multivariate=False)
    policy = DriftPolicy()
    return [{k: r.drift for k, r in policy.evaluate(ref, w).items()} for w in windows]


def _evidently_window(ref_df: Any, cur_df: Any) -> dict[str, bool]:
    try:  # evidently >= 0.7
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=[c for c in ref_df.columns if c.startswith("num_")],
            categorical_columns=[c for c in ref_df.columns if c.startswith("cat_")],
        )
        snap = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur_df, data_definition=definition),
            Dataset.from_pandas(ref_df, data_definition=definition),
        )
        out: dict[str, bool] = {}
        for m in snap.dict()["metrics"]:
            cfg = m.get("config", {})
            col = cfg.get("column")
            if col is None or "ValueDrift" not in str(cfg.get("type", "")):
                continue
            threshold = cfg.get("threshold")
            value = m["value"]
            method = str(cfg.get("method", ""))
            # p-value methods drift below the threshold, distances at or above it.
            is_p = "p_value" in method or method.lower().startswith(("k-s", "chi", "z-test", "ks"))
            out[col] = bool(value < threshold) if is_p else bool(value >= threshold)
        return out
    except ImportError:
        from evidently.metric_preset import DataDriftPreset as OldPreset
        from evidently.report import Report as OldReport

        report = OldReport(metrics=[OldPreset()])
        report.run(reference_data=ref_df, current_data=cur_df)
        for m in report.as_dict()["metrics"]:
            cols = m["result"].get("drift_by_columns")
            if cols:
                return {k: bool(v["drift_detected"]) for k, v in cols.items()}
        return {}


def run_one(tool: str, warm: bool) -> None:
    """One tool, cold, in this (fresh) process; prints one JSON line."""
    rng = np.random.default_rng(0)
    ref_cols = make(REF_ROWS, rng, False)
    windows = [make(WIN_ROWS, rng, i >= WINDOWS // 2) for i in range(WINDOWS)]
    if tool == "evidently":
        import importlib.util

        if importlib.util.find_spec("evidently") is None:  # looked up, not imported: stays cold
            print(json.dumps({"tool": tool, "missing": True}))
            return
        import pandas as pd

        # The frames are Evidently's input as the column dicts are ours: built before timing.
        ref_df = pd.DataFrame(ref_cols)
        frames = [pd.DataFrame(w) for w in windows]

        def fn() -> list[dict[str, bool]]:
            return [_evidently_window(ref_df, f) for f in frames]
    else:

        def fn() -> list[dict[str, bool]]:
            return ours(ref_cols, windows)

    times = []
    for _ in range(2 if warm else 1):
        t0 = time.perf_counter()
        verdicts = fn()
        times.append(time.perf_counter() - t0)
    version = ""
    if tool == "evidently":
        import evidently

        version = getattr(evidently, "__version__", "?")
    print(json.dumps({"tool": tool, "times": times, "verdicts": verdicts, "version": version}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", choices=["ours", "evidently"], help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help="also time a second, warm run of each tool")
    ap.add_argument(
        "--evidently-python", default=sys.executable, help="interpreter with Evidently installed (default: this one)"
    )
    args = ap.parse_args()
    if args.run:
        run_one(args.run, args.warm)
        return
    extra = ["--warm"] if args.warm else []

    def fresh(python: str, tool: str) -> dict[str, Any]:
        out = subprocess.run([python, __file__, "--run", tool, *extra], check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    mine = fresh(sys.executable, "ours")
    v_ours = mine["verdicts"]
    flagged = sum(sum(v.values()) for v in v_ours)
    t_ours = mine["times"]
    print(
        f"infersight: profile + drift of {N_NUM}+{N_CAT} features, {REF_ROWS} ref rows, {WINDOWS}x{WIN_ROWS}: "
        f"{t_ours[0]:.2f} s cold (fresh process, imports included)"
        + (f", {t_ours[1]:.2f} s warm" if len(t_ours) > 1 else "")
        + f"; {flagged} drifted cells"
    )
    ev = fresh(args.evidently_python, "evidently")
    if ev.get("missing"):
        print("evidently: not installed in that interpreter; see the module docstring")
        return
    v_ev, t_ev = ev["verdicts"], ev["times"]
    print(
        f"evidently {ev['version']} DataDriftPreset: {t_ev[0]:.2f} s cold (fresh process, imports included)"
        + (f", {t_ev[1]:.2f} s warm" if len(t_ev) > 1 else "")
        + f"; {sum(sum(v.values()) for v in v_ev)} drifted cells"
    )
    cells = [(i, k) for i, v in enumerate(v_ours) for k in v if k in v_ev[i]]
    agree = sum(v_ours[i][k] == v_ev[i][k] for i, k in cells)
    print(
        f"speed-up, cold vs cold: {t_ev[0] / t_ours[0]:.0f}x"
        + (f"; warm vs warm: {t_ev[1] / t_ours[1]:.0f}x" if len(t_ours) > 1 else "")
        + f"; verdict agreement: {agree}/{len(cells)} = {agree / max(len(cells), 1):.2%}"
    )
    kinds: Counter[tuple[str, str, str]] = Counter()
    for i, k in cells:
        if v_ours[i][k] != v_ev[i][k]:
            group = (
                k if k.startswith("cat") else f"num_{int(k.split('_')[1]) // 5 * 5}-{int(k.split('_')[1]) // 5 * 5 + 4}"
            )
            kinds[
                (group, "drift window" if i >= WINDOWS // 2 else "null window", "ours" if v_ours[i][k] else "evidently")
            ] += 1
    for (group, when, who), n in sorted(kinds.items()):
        print(f"  disagreement: {group:<10} {when:<12} only {who} flagged: {n} cells")


if __name__ == "__main__":
    main()
