"""``infersight report``: a static HTML drift report, from files or from a processor.

From files, the data is judged exactly as ``infersight drift`` judges it (same flags, same
engine, same JSON; the report's table is that JSON); from a processor, the table is what
``/api/models/{model}/drift`` answers for the range (one entry per evaluation window), and
the plots read the range's merged sketches from ``/api/models/{model}/features/{name}``
(the reference side needs the profile file: the processor's API does not serve it).

Exit codes: 0 when the report is written; 2 for unusable input (the message names it).

Example:
    $ infersight report reference.json today.csv -o report.html
    $ infersight report --processor http://127.0.0.1:8318 --model churn --start 2024-05-01 --end 2024-05-02 \\
        reference.json -o churn.html
"""

from __future__ import annotations

import argparse
import os
import urllib.parse
from pathlib import Path
from typing import Any

from infersight.cli.drift import add_drift_flags

__all__ = ["add_parser", "run"]

_FILE_ONLY = ("chunk_size", "time_column", "every", "columns", "alpha", "min_effect", "method", "no_multivariate")
_PROCESSOR_ONLY = ("model", "start", "end", "token", "version", "window")


def add_parser(subparsers: Any) -> None:
    """Register ``infersight report``."""
    p = subparsers.add_parser(
        "report",
        help="a static HTML drift report with plots",
        description="Write one self-contained HTML file (no network needed to open it): the drift table, "
        "reference-versus-current plots per feature, data quality and cause hints. Either REFERENCE DATA "
        "(judged as `infersight drift` judges them), or --processor URL --model M for a stored range.",
    )
    p.add_argument("reference", nargs="?", help="reference profile written by `infersight profile`")
    p.add_argument("data", nargs="?", help="data file to check (CSV, Parquet, JSON lines, .npy); not with --processor")
    p.add_argument("-o", "--output", default="report.html", help="where to write the page (default ./report.html)")
    p.add_argument("--title", default=None, help="the page's title (default: the model's name)")
    add_drift_flags(p)
    g = p.add_argument_group("a processor's stored range")
    g.add_argument("--processor", metavar="URL", default=None, help="web address of a running processor")
    g.add_argument("--model", default=None, help="the model to report on (with --processor)")
    g.add_argument("--start", default=None, help="range start: Unix seconds or ISO 8601 (default: the first window)")
    g.add_argument("--end", default=None, help="range end, exclusive (default: the end of the current window)")
    g.add_argument("--version", default=None, help="only this model version")
    g.add_argument("--window", default=None, metavar="DURATION", help="evaluation window size (default: the model's)")
    g.add_argument(
        "--token",
        default=None,
        help="bearer token of the processor (default: $INFERSIGHT_PROCESSOR_TOKEN)",
    )
    p.set_defaults(func=run)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_output(path: str) -> None:
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"-o {path!r}: the folder {str(folder)!r} does not exist; create it or write the report elsewhere"
        )


def run(args: argparse.Namespace) -> int:
    from infersight.cli import fail

    try:
        _check_output(args.output)
        if args.processor:
            report = _from_processor(args)
        else:
            report = _from_files(args)
    except ModuleNotFoundError:
        raise  # a missing extra: the command line names it and its pip install
    except (OSError, ValueError, KeyError, ImportError, TypeError) as exc:
        return fail("report", exc)
    from infersight.report import render

    page = render(report)
    try:
        Path(args.output).write_text(page, encoding="utf-8")
    except OSError as exc:
        return fail("report", f"cannot write {args.output!r} ({exc.strerror or exc}); pass -o a writable path")
    windows = report.drift.get("windows", [])
    feats = windows[-1]["features"] if windows else {}
    n = sum(1 for f in feats.values() if f["drift"])
    print(f"wrote {args.output}: {n} of {len(feats)} features drifted" + (" in the latest window" * (len(windows) > 1)))
    return 0


def _from_files(args: argparse.Namespace) -> Any:
    from infersight.cli.drift import evaluate_windows, prepare
    from infersight.report import ReportInput, feature_views

    if not args.reference or not args.data:
        raise ValueError(
            "give REFERENCE and DATA (e.g. `infersight report reference.json today.csv -o report.html`), "
            "or --processor URL --model NAME for a processor's stored range"
        )
    stray = [_flag(k) for k in _PROCESSOR_ONLY if getattr(args, k) is not None]
    if stray:
        raise ValueError(f"{', '.join(stray)} only apply with --processor URL; drop them or add --processor")
    ready = prepare(args)
    drift = evaluate_windows(ready.reference, ready.windows, args, missing=ready.missing, policy=ready.policy)
    wanted = list(args.columns or ready.reference.features)
    features = feature_views(ready.reference, ready.columns, ready.rows, wanted)
    unprofiled = sorted(k for k in ready.columns if k not in ready.reference.features and k != args.time_column)
    ref = ready.reference
    return ReportInput(
        title=args.title or f"Drift report: {ref.model or Path(args.data).name}",
        drift=drift,
        features=features,
        sources=[("reference", args.reference), ("data", f"{args.data} ({ready.rows} rows)")]
        + ([("model", ref.model)] if ref.model else []),
        unprofiled=unprofiled,
    )


def _from_processor(args: argparse.Namespace) -> Any:
    from infersight.report import ProcessorClient, ProcessorError, ReportInput, processor_views
    from infersight.stats.reference import Reference

    if args.data:
        raise ValueError(
            f"with --processor the data is the processor's stored range, not {args.data!r}; "
            "drop DATA (a REFERENCE file may stay: it draws the reference side of the plots)"
        )
    if not args.model:
        raise ValueError("--processor needs --model NAME (the model to report on; see /api/models)")
    stray = [_flag(k) for k in _FILE_ONLY if getattr(args, k) not in (None, False)]
    if stray:
        raise ValueError(
            f"{', '.join(stray)} only apply to REFERENCE DATA; with --processor the processor judges "
            "with its own configuration (set windows and methods there)"
        )
    reference = Reference.load(args.reference) if args.reference else None
    client = ProcessorClient(args.processor, args.token or os.environ.get("INFERSIGHT_PROCESSOR_TOKEN"))
    model = urllib.parse.quote(args.model, safe="")
    try:
        try:
            drift = client.get(
                f"/api/models/{model}/drift", start=args.start, end=args.end, version=args.version, window=args.window
            )
        except ProcessorError as exc:
            if " answered 404" in str(exc):
                known = [m["model"] for m in client.get("/api/models").get("models", [])]
                raise ProcessorError(
                    f"the processor at {client.base} has no stored windows for model {args.model!r}; "
                    f"it has {', '.join(sorted(known)) or '(none)'}"
                ) from None
            raise
        features = processor_views(client, args.model, drift, reference, version=args.version)
        described = client.get(f"/api/models/{model}")
    except ProcessorError as exc:
        raise ValueError(str(exc)) from None
    judged = set(features)
    unprofiled = sorted(f["name"] for f in described.get("features", []) if f["name"] not in judged)
    start, end = int(drift["start"]), int(drift["end"])
    notes = []
    if reference is None:
        notes.append(
            "No reference profile was given: the plots show the current range only; pass the profile the "
            "processor uses as REFERENCE to draw both sides."
        )
    sources = [
        ("processor", client.base),
        ("model", args.model + (f" version {args.version}" if args.version else "")),
        ("range", f"{_iso(start)} .. {_iso(end)}"),
        ("processor's reference", ", ".join(drift.get("reference") or []) or "none"),
    ]
    if args.reference:
        sources.append(("plotted reference", args.reference))
    return ReportInput(
        title=args.title or f"Drift report: {args.model}",
        drift=drift,
        features=features,
        sources=sources,
        unprofiled=unprofiled,
        notes=notes,
        range=(start, end),
    )


def _iso(seconds: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
