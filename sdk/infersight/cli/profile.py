"""``infersight profile``: a reference profile and schema from training data.

Example:
    $ infersight profile train.csv --model churn -o reference.json
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``infersight profile``."""
    p = subparsers.add_parser(
        "profile",
        help="build a reference profile and schema from training data",
        description="Profile training data (CSV, Parquet, JSON lines, .npy) into reference.json.",
    )
    p.add_argument("data", help="training data file")
    p.add_argument("--model", required=True, help="model name the profile belongs to")
    p.add_argument("--model-version", default=None, help="model version (schemas are checked against it)")
    p.add_argument(
        "-o",
        "--output",
        default="reference.json",
        metavar="FILE",
        help="where to write the profile (JSON; default ./reference.json, replaced if it exists)",
    )
    p.add_argument("--prediction", default=None, metavar="COL", help="column holding the model's predictions")
    p.add_argument("--target", default=None, metavar="COL", help="column holding the true labels")
    p.add_argument("--trained-at", default=None, metavar="TIME", help="when the model was trained (ISO-8601)")
    p.add_argument("--columns", nargs="+", default=None, help="profile only these feature columns")
    p.add_argument("--relations", action="store_true", help="also infer a <= b relations between numeric columns")
    p.add_argument("--no-progress", action="store_true", help="never show a progress line")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="read and profile N columns at a time (default: one per CPU from 50,000 rows)",
    )
    p.set_defaults(func=_run_profile)


def _run_profile(args: argparse.Namespace) -> int:
    # The command makes few objects that outlive a step and no reference cycles worth a
    # collection; the cyclic collector, run by the allocations of the imports and the profile,
    # cost 3-4% of the command's CPU. Off for the run, back as it was after (a caller running
    # the command in its own process keeps its setting).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _profile(args)
    finally:
        if was_enabled:
            gc.enable()


def _profile(args: argparse.Namespace) -> int:
    from infersight.cli import fail
    from infersight.stats.io import parquet_columns, read_table
    from infersight.stats.reference import Reference

    options: dict[str, Any] = {
        "model": args.model,
        "model_version": args.model_version,
        "prediction": args.prediction,
        "target": args.target,
        "trained_at": args.trained_at,
        "columns": list(args.columns) if args.columns else None,
        "threads": args.threads,
    }
    try:
        if Path(args.data).suffix.lower() in (".parquet", ".pq") and not args.relations:
            # Each column is profiled as it is read and then let go: the table is never whole
            # in memory (relations compare columns pairwise, so they need it whole). The
            # loaders' arrays are fresh and ours: sorted where they lie.
            loaders, n = parquet_columns(args.data)
            _has_rows(args.data, n)
            ref = Reference.from_columns(loaders, n, overwrite=True, **options)
        else:
            cols, n = read_table(args.data, progress=False if args.no_progress else None, threads=args.threads)
            _has_rows(args.data, n)
            ref = Reference.from_data((cols, n), relations=args.relations, **options)
        replaced = Path(args.output).exists()
        ref.save(args.output)
    except (OSError, ValueError, KeyError, ImportError, TypeError) as exc:
        return fail("profile", exc)
    kinds: dict[str, int] = {}
    for f in ref.features.values():
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    print(
        f"wrote {args.output}{' (replaced the file that was there)' if replaced else ''}: "
        f"{n} rows, {len(ref.features)} features ({summary})"
    )
    return 0


def _has_rows(data: str, n: int) -> None:
    if n == 0:
        raise ValueError(f"data file {data!r} has no rows (a header only?); a reference needs training data")
