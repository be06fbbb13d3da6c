"""Reference profiling time and peak memory: infersight versus whylogs (issue 13).

Data: a 1,000,000 x 20 float frame (seed 0): columns cycle through normal, log-normal, prices
rounded to cents and Poisson counts, so ties and atoms are part of the work. Every figure comes
from a fresh process of its own, ``--rounds`` times (default 3; rounds interleaved, so a change
of load on a shared machine hits every tool alike), and the medians are reported:

- in process, cold: the frame is built first (outside the timing), then the tool is imported
  and profiles the frame once (``Reference.from_data`` / ``why.log``); "warm" is the best of two
  more runs in the same process. Peak memory is the process's peak RSS minus its RSS with the
  frame built (what profiling added);
- command line: ``infersight profile FILE`` against a Python process that imports whylogs and
  pandas, reads the same file with ``pandas.read_parquet`` (pyarrow) and calls ``why.log``. Wall
  time from spawn to exit and the process's peak RSS (``wait4``); the read alone is timed in
  another fresh process (import included) for each tool.

Before timing, each tool runs once untimed on a 1,000-row file and frame, with a bytecode cache
beside the data (``PYTHONPYCACHEPREFIX``), so no timed process compiles its modules: see
``child_env``.

CPU seconds are printed beside wall seconds: on a shared machine the wall time is partly other
people's load, the CPU time is the work done (all threads together).

infersight is timed on one thread (``threads=1``) and on all cores (the default). ``--before
DIR`` adds the same figures for an older tree (``DIR`` is put first on ``PYTHONPATH``, e.g.
``git archive 84ea44b sdk | tar -x -C /tmp/i13-before`` and the compiled ``_speedups`` copied
in). ``--command-only`` times the command line alone (before and after side by side, with the
CPU spread of the rounds): ``--before DIR --command-only --rounds 8`` without whylogs is a
quick A/B of a change.

whylogs lives only in the benchmark's own venv, never as a project dependency:

    python -m venv /tmp/bench-whylogs
    /tmp/bench-whylogs/bin/pip install whylogs==1.6.4 pandas pyarrow
    python bench/profiling.py --whylogs-python /tmp/bench-whylogs/bin/python

Without whylogs the script prints our own figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def make(rows: int, cols: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.empty((rows, cols))
    for j in range(cols):
        kind = j % 4
        if kind == 0:
            out[:, j] = rng.normal(j, 1 + j % 5, rows)
        elif kind == 1:
            out[:, j] = rng.lognormal(1 + j % 3, 0.5, rows)
        elif kind == 2:
            out[:, j] = np.round(rng.lognormal(3, 1, rows), 2)
        else:
            out[:, j] = rng.poisson(1.5 + j % 3, rows)
    return out


def frame(rows: int, cols: int) -> Any:
    import pandas as pd

    return pd.DataFrame(make(rows, cols), columns=[f"f{j}" for j in range(cols)])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> float:
    """Current RSS in MB, and the kernel's peak RSS (VmHWM) reset to it (Linux)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mb("VmRSS")


def run_child(tool: str, rows: int, cols: int, threads: int) -> dict[str, Any]:
    """In a fresh process: build the frame, then time the tool on it cold and warm."""
    df = frame(rows, cols)
    import gc

    gc.collect()
    base = reset_peak()
    t0 = time.perf_counter()
    c0 = time.process_time()
    if tool == "whylogs":
        import whylogs as why

        def fn() -> Any:
            return why.log(df)

    else:
        import inspect

        from infersight.stats.reference import Reference

        kw = {"threads": threads} if "threads" in inspect.signature(Reference.from_data).parameters else {}

        def fn() -> Any:
            return Reference.from_data(df, model="bench", **kw)

    imported = time.perf_counter()
    fn()
    cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
    first_peak = _status_mb("VmHWM")
    warm, warm_cpu = [], []
    for _ in range(2):
        t, c = time.perf_counter(), time.process_time()
        fn()
        warm.append(time.perf_counter() - t)
        warm_cpu.append(time.process_time() - c)
    return {
        "import": imported - t0,
        "cold": cold,
        "cold_cpu": cold_cpu,
        "warm": min(warm),
        "warm_cpu": min(warm_cpu),
        "peak_added_mb": first_peak - base,
        "frame_rss_mb": base,
    }


def read_child(tool: str, path: str) -> dict[str, Any]:
    """In a fresh process: import what reading needs, read the file, nothing else."""
    t0 = time.perf_counter()
    if tool == "whylogs":
        import pandas as pd

        df = pd.read_parquet(path)
        n = len(df)
    else:
        from infersight.stats.io import read_table

        _, n = read_table(path, progress=False)
    return {"read": time.perf_counter() - t0, "rows": n, "peak_mb": rss_mb()}


def whylogs_file_child(path: str) -> dict[str, Any]:
    import pandas as pd
    import whylogs as why

    why.log(pd.read_parquet(path)).view()
    return {}


def spawn(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str, float]:
    """Run ``cmd``; wall seconds from spawn to exit, peak RSS in MB, stdout, CPU seconds."""
    with tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read() if p.stderr else ""
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read(), usage.ru_utime + usage.ru_stime


def child_json(python: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    _, _, out, _ = spawn([python, __file__, *args], env)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--whylogs-python", default=None, help="interpreter of a venv with whylogs, pandas, pyarrow")
    ap.add_argument("--before", default=None, help="an older infersight sdk tree to time the same way")
    ap.add_argument("--data", default=None, help="folder for the Parquet file (default: a temporary one)")
    ap.add_argument("--skip-whylogs-frame", action="store_true", help="time whylogs through the file only")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per figure, interleaved; medians reported")
    ap.add_argument(
        "--command-only", action="store_true", help="time the command line only (no in-process figures, no reads)"
    )
    a = ap.parse_args()
    if a.run == "profile":
        tool = "whylogs" if a.threads < 0 else "ours"
        print(json.dumps(run_child(tool, a.rows, a.cols, a.threads if a.threads > 0 else None)))
        return
    if a.run in ("read-ours", "read-whylogs"):
        print(json.dumps(read_child(a.run.split("-")[1], a.path)))
        return
    if a.run == "whylogs-file":
        print(json.dumps(whylogs_file_child(a.path)))
        return

    n_values = a.rows * a.cols
    shape = f"{a.rows:,} x {a.cols}"
    me = sys.executable
    common = ["--rows", str(a.rows), "--cols", str(a.cols)]
    folder = Path(a.data) if a.data else Path(tempfile.mkdtemp(prefix="bench-profile-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"frame-{a.rows}x{a.cols}.parquet"
    if not path.exists():
        frame(a.rows, a.cols).to_parquet(path)
    env = child_env(folder)
    before_env = dict(env, PYTHONPATH=os.pathsep.join([a.before or "", env.get("PYTHONPATH", "")]))
    out_json = folder / "reference.json"

    def cli_cmd(extra: list[str], data: Path = path) -> list[str]:
        return [
            me,
            "-m",
            "infersight",
            "profile",
            str(data),
            "--model",
            "bench",
            "-o",
            str(out_json),
            "--no-progress",
            *extra,
        ]

    # Untimed: each tool once on a small file and a small frame, so every timed process finds
    # its modules compiled, as an installed package has them.
    small = folder / f"frame-1000x{a.cols}.parquet"
    if not small.exists():
        frame(1000, a.cols).to_parquet(small)
    small_rows = ["--rows", "1000", "--cols", str(a.cols)]
    spawn(cli_cmd([], small), env)
    child_json(me, ["--run", "profile", *small_rows], env)
    if a.before:
        spawn(cli_cmd([], small), before_env)
        if not a.command_only:
            child_json(me, ["--run", "profile", "--threads", "1", *small_rows], before_env)
    if a.whylogs_python:
        spawn([a.whylogs_python, __file__, "--run", "whylogs-file", "--path", str(small)], env)
        if not a.command_only:
            child_json(a.whylogs_python, ["--run", "profile", "--threads", "-1", *small_rows], env)
    if not a.command_only:
        in_process_figures(a, me, env, before_env, common, n_values, shape)
    command_figures(a, me, env, before_env, cli_cmd, path, n_values)
    print(f"\nload average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def in_process_figures(
    a: argparse.Namespace,
    me: str,
    env: dict[str, str],
    before_env: dict[str, str],
    common: list[str],
    n_values: int,
    shape: str,
) -> None:
    in_process: list[tuple[str, str, list[str], dict[str, str]]] = [
        ("infersight, 1 thread", me, ["--threads", "1"], env),
        (f"infersight, {os.cpu_count()} threads", me, ["--threads", "0"], env),
    ]
    if a.before:
        in_process.append(("infersight before", me, ["--threads", "1"], before_env))
    if a.whylogs_python and not a.skip_whylogs_frame:
        in_process.append(("whylogs", a.whylogs_python, ["--threads", "-1"], env))
    print(f"in process, {shape} frame (fresh process each; frame built before timing), {a.rounds} round(s):")
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in in_process}
    for _ in range(a.rounds):  # rounds interleaved, so a change of load hits every tool alike
        for label, python, extra, e in in_process:
            runs[label].append(child_json(python, ["--run", "profile", *extra, *common], e))
    results = {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()}

    def spread(label: str, key: str) -> str:
        vals = [r[key] for r in runs[label]]
        return f"{min(vals):.3f}-{max(vals):.3f}" if len(vals) > 1 else ""

    for label in results:
        r = results[label]
        print(
            f"  {label:24s} cold {r['cold']:6.3f} s [{spread(label, 'cold')}] (import {r['import']:.3f}; cpu {r['cold_cpu']:.3f})  "
            f"warm {r['warm']:6.3f} s [{spread(label, 'warm')}] (cpu {r['warm_cpu']:.3f})  "
            f"{n_values / r['warm'] / 1e6:5.1f} M values/s  peak +{r['peak_added_mb']:.0f} MB"
        )
    if "whylogs" in results:
        w = results["whylogs"]
        for label in [k for k in results if k != "whylogs"]:
            r = results[label]
            print(
                f"  whylogs / {label}: cold {w['cold'] / r['cold']:.1f}x (cpu {w['cold_cpu'] / r['cold_cpu']:.1f}x), "
                f"warm {w['warm'] / r['warm']:.1f}x (cpu {w['warm_cpu'] / r['warm_cpu']:.1f}x), "
                f"peak memory added {w['peak_added_mb'] / max(r['peak_added_mb'], 1):.1f}x"
            )


def command_figures(
    a: argparse.Namespace,
    me: str,
    env: dict[str, str],
    before_env: dict[str, str],
    cli_cmd: Any,
    path: Path,
    n_values: int,
) -> None:
    size = path.stat().st_size / 2**20
    print(f"\ncommand line, {path.name} ({size:.0f} MB Parquet), wall time from spawn to exit, peak RSS, medians:")
    commands: list[tuple[str, list[str], dict[str, str]]] = [
        ("infersight profile --threads 1", cli_cmd(["--threads", "1"]), env),
        ("infersight profile", cli_cmd([]), env),
    ]
    if a.before:
        commands.append(("infersight profile --threads 1, before", cli_cmd(["--threads", "1"]), before_env))
        commands.append(("infersight profile, before", cli_cmd([]), before_env))
    if a.whylogs_python:
        commands.append(
            (
                "whylogs (read_parquet + why.log)",
                [a.whylogs_python, __file__, "--run", "whylogs-file", "--path", str(path)],
                env,
            )
        )
    timed: dict[str, list[tuple[float, float, float]]] = {label: [] for label, *_ in commands}
    for _ in range(a.rounds):
        for label, cmd, e in commands:
            wall, peak, _, cpu = spawn(cmd, e)
            timed[label].append((wall, peak, cpu))
    cli = {label: tuple(statistics.median(t[i] for t in ts) for i in range(3)) for label, ts in timed.items()}
    for label, (wall, peak, cpu) in cli.items():
        walls = ", ".join(f"{t[0]:.3f}" for t in timed[label])
        cpus = [t[2] for t in timed[label]]
        print(
            f"  {label:38s} {wall:7.3f} s ({walls}; cpu {cpu:.3f} [{min(cpus):.3f}-{max(cpus):.3f}])  "
            f"peak RSS {peak:5.0f} MB  {n_values / wall / 1e6:5.1f} M values/s"
        )
    if a.command_only:
        return
    read = child_json(me, ["--run", "read-ours", "--path", str(path)], env)
    print(
        f"  {'infersight: reading alone (import + read)':42s} {read['read']:7.3f} s  peak RSS {read['peak_mb']:5.0f} MB"
    )
    if a.whylogs_python:
        wread = child_json(a.whylogs_python, ["--run", "read-whylogs", "--path", str(path)], env)
        print(
            f"  {'whylogs: reading alone (import + read)':42s} {wread['read']:7.3f} s  peak RSS {wread['peak_mb']:5.0f} MB"
        )
        w_wall, w_peak, w_cpu = cli["whylogs (read_parquet + why.log)"]
        for label, (wall, peak, cpu) in cli.items():
            if not label.startswith("whylogs"):
                print(
                    f"  whylogs / {label}: {w_wall / wall:.1f}x time (cpu {w_cpu / cpu:.1f}x), {w_peak / peak:.1f}x peak RSS"
                )


def child_env(folder: Path) -> dict[str, str]:
    """Every timed process compiles its modules once and keeps the bytecode, as an installed
    package does: an environment that sets ``PYTHONDONTWRITEBYTECODE`` (this project's worker
    machines do) would otherwise make each process compile infersight's ~40 modules afresh
    (0.03-0.08 s), while whylogs' site-packages came with theirs. The cache lives beside the
    data, not in the source tree."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(folder / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


if __name__ == "__main__":
    main()
