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

``--cli`` times the offline command end to end instead (issue 13): ``infersight drift
reference.json analysis.csv --chunk-size 5000 --format json`` as a process of its own, from
process start to exit, against a process of Evidently's that reads the same two CSV files with
pandas and runs DataDriftPreset on the same 10 chunks (8 mixed columns: 5 numeric, 3
categorical; a 50,000-row reference, a 50,000-row analysis file whose second half drifts).
Both cold (a fresh process each), rounds interleaved, medians reported. The reference profile
is built once beforehand (``infersight profile``, timed and printed apart): that is what a
batch pipeline keeps, as Evidently keeps its reference frame.

    python bench/drift.py --cli --evidently-python /tmp/bench-evidently/bin/python --rounds 5
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


def _value_drift_verdicts(snapshot: dict[str, Any]) -> dict[str, bool]:
    """Per column drift verdicts from an Evidently >= 0.7 snapshot's ``ValueDrift`` metrics."""
    out: dict[str, bool] = {}
    for m in snapshot["metrics"]:
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


def _evidently_window(ref_df: Any, cur_df: Any, numeric: list[str] | None = None) -> dict[str, bool]:
    """Evidently's verdict per column; ``numeric`` names the numeric columns (default: ``num_*``)."""
    try:  # evidently >= 0.7
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        nums = numeric if numeric is not None else [c for c in ref_df.columns if c.startswith("num_")]
        definition = DataDefinition(
            numerical_columns=nums,
            categorical_columns=[c for c in ref_df.columns if c not in nums],
        )
        snap = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur_df, data_definition=definition),
            Dataset.from_pandas(ref_df, data_definition=definition),
        )
        return _value_drift_verdicts(snap.dict())
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


CLI_ROWS, CLI_CHUNK = 50_000, 5_000


def _cli_frame(n: int, rng: np.random.Generator, drift: bool) -> dict[str, np.ndarray]:
    """8 mixed columns; with ``drift`` a mean shift, a unit bug, a harmless scale and a moved share."""
    plan_p = [0.4, 0.4, 0.2] if drift else [0.6, 0.3, 0.1]
    return {
        "age": rng.normal(40, 10, n) + (5 if drift else 0),
        "income": rng.lognormal(10, 1, n) * (1000 if drift else 1),
        "score": rng.random(n) * (1.02 if drift else 1),
        "visits": rng.poisson(3, n).astype(np.float64),
        "tenure": rng.exponential(12, n),
        "plan": rng.choice(np.array(["free", "pro", "team"], dtype=object), n, p=plan_p),
        "country": rng.choice(np.array([f"c{i}" for i in range(20)], dtype=object), n),
        "device": rng.choice(np.array(["ios", "android", "web"], dtype=object), n),
    }


def _write_csv(path: str, cols: dict[str, np.ndarray]) -> None:
    names = list(cols)
    rows = zip(*(c.tolist() for c in cols.values()))
    with open(path, "w") as fh:
        fh.write(",".join(names) + "\n")
        fh.writelines(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n" for row in rows)


def evidently_cli(ref_csv: str, data_csv: str, chunk: int) -> None:
    """Evidently's side of ``--cli``: read both files, DataDriftPreset per chunk, print verdicts.

    The reference ``Dataset`` is built once and reused for every chunk (building it per chunk,
    as ``_evidently_window`` does, made Evidently ~1.5x slower still; we time its best use)."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_csv(ref_csv)
    cur = pd.read_csv(data_csv)
    numeric = [c for c in ref.columns if ref[c].dtype.kind in "iuf"]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[c for c in ref.columns if c not in numeric]
    )
    ref_ds = Dataset.from_pandas(ref, data_definition=definition)
    out = []
    for lo in range(0, len(cur), chunk):
        window = Dataset.from_pandas(cur.iloc[lo : lo + chunk].reset_index(drop=True), data_definition=definition)
        snap = Report([DataDriftPreset()]).run(window, ref_ds)
        out.append(_value_drift_verdicts(snap.dict()))
    print(json.dumps(out))


def cli_main(evidently_python: str, rounds: int) -> None:
    import resource
    import statistics
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="infersight-drift-bench-"))
    ref_csv, data_csv, ref_json = str(tmp / "ref.csv"), str(tmp / "analysis.csv"), str(tmp / "ref.json")
    _write_csv(ref_csv, _cli_frame(CLI_ROWS, rng, False))
    half = CLI_ROWS // 2
    a, b = _cli_frame(half, rng, False), _cli_frame(half, rng, True)
    _write_csv(data_csv, {k: np.concatenate([a[k], b[k]]) for k in a})
    me = [sys.executable, "-m", "infersight"]
    t0 = time.perf_counter()
    subprocess.run([*me, "profile", ref_csv, "--model", "bench", "-o", ref_json, "--no-progress"], check=True,
                   capture_output=True)  # fmt: skip
    t_profile = time.perf_counter() - t0
    ours_cmd = [*me, "drift", ref_json, data_csv, "--chunk-size", str(CLI_CHUNK), "--format", "json"]
    ev_cmd = [evidently_python, __file__, "--evidently-cli", ref_csv, data_csv, str(CLI_CHUNK)]

    cpu: dict[str, list[float]] = {"ours": [], "evidently": []}

    def timed(cmd: list[str], who: str) -> tuple[float, str]:
        # Wall time from process start to exit; the CPU time (user + sys) beside it, because
        # on a shared VM the wall time also measures the neighbours.
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[who].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        return wall, out.stdout

    have_ev = (
        subprocess.run([evidently_python, "-c", "import evidently"], capture_output=True).returncode == 0
    )  # looked up once, outside the timing
    t_ours: list[float] = []
    t_ev: list[float] = []
    report = verdicts_ev = None
    for _ in range(rounds):
        t, out = timed(ours_cmd, "ours")
        t_ours.append(t)
        report = json.loads(out)
        if have_ev:
            t, out = timed(ev_cmd, "evidently")
            t_ev.append(t)
            verdicts_ev = json.loads(out.strip().splitlines()[-1])
    assert report is not None
    mo = statistics.median(t_ours)
    print(f"infersight drift CLI, {CLI_ROWS} ref rows x 8 columns, {CLI_ROWS} rows in {CLI_ROWS // CLI_CHUNK} chunks:")
    print(f"  infersight profile (once, beforehand): {t_profile:.2f} s")
    print(
        f"  infersight drift, process start to exit: median {mo:.2f} s of {rounds} ({', '.join(f'{t:.2f}' for t in t_ours)})"
    )
    if not have_ev:
        print("  evidently: not installed in that interpreter; see the module docstring")
        return
    me_ = statistics.median(t_ev)
    print(
        f"  evidently DataDriftPreset, same files, process start to exit: median {me_:.2f} s ({', '.join(f'{t:.2f}' for t in t_ev)})"
    )
    print(
        f"  speed-up, cold vs cold, end to end: {me_ / mo:.1f}x (per round: {', '.join(f'{e / o:.1f}' for e, o in zip(t_ev, t_ours))})"
    )
    ours_v = [{k: f["drift"] for k, f in w["features"].items()} for w in report["windows"]]
    cells = [(i, k) for i, v in enumerate(ours_v) for k in v if verdicts_ev and k in verdicts_ev[i]]
    agree = sum(ours_v[i][k] == verdicts_ev[i][k] for i, k in cells) if verdicts_ev else 0
    co, ce = statistics.median(cpu["ours"]), statistics.median(cpu["evidently"])
    print(f"  CPU time (user + sys), medians: infersight {co:.2f} s, evidently {ce:.2f} s: {ce / co:.1f}x")
    print(f"  verdict agreement: {agree}/{len(cells)}")
    for i, k in cells:
        if verdicts_ev and ours_v[i][k] != verdicts_ev[i][k]:
            print(f"    window {i} {k}: infersight {ours_v[i][k]}, evidently {verdicts_ev[i][k]}")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--evidently-cli":
        evidently_cli(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--cli", action="store_true", help="time `infersight drift` end to end against Evidently (issue 13)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="with --cli: interleaved rounds, medians reported")
    ap.add_argument("--run", choices=["ours", "evidently"], help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help="also time a second, warm run of each tool")
    ap.add_argument(
        "--evidently-python", default=sys.executable, help="interpreter with Evidently installed (default: this one)"
    )
    args = ap.parse_args()
    if args.cli:
        cli_main(args.evidently_python, args.rounds)
        return
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
