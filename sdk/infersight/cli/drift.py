"""``infersight drift REFERENCE DATA``: offline drift for batch pipelines.

The data file is cut into windows (``--chunk-size N`` rows, or ``--time-column COL --every
DURATION``, or one window for the whole file), each window is compared with the reference by
the default :class:`~infersight.stats.drift.DriftPolicy`, and the verdicts print as a table (coloured
on a terminal) or as JSON::

    {"windows": [{"start": ..., "end": ..., "rows": n,
                  "features": {NAME: {"method", "statistic", "threshold", "p_value", "drift", "cause", "reason"}},
                  "multivariate": {...}}],
     "summary": {"windows", "windows_with_drift", "windows_not_judged", "first_drift", "features",
                 "missing_features"}}

``start``/``end`` are row indices (end exclusive) or ISO timestamps; ``reason`` says what decided
the verdict (``p 0.02 >= alpha 0.001``). A reference feature the data lacks is a finding of its
own (``cause: feature_missing``, ``drift: true``): a gate must not pass because a column was
renamed upstream. The exit code is 0, or 3 with ``--fail-on-drift`` when any window drifted or a
feature is missing (for CI); 2 for unusable input, including data sharing no feature with the
reference.

Example:
    $ infersight drift reference.json today.csv --chunk-size 5000 --format json --fail-on-drift
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "add_parser",
    "add_drift_flags",
    "run",
    "prepare",
    "Prepared",
    "parse_duration",
    "make_policy",
    "evaluate_windows",
    "summarize",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in ``30s``, ``15m``, ``1h``, ``1d``, ``1w`` (or a plain number of seconds).

    >>> parse_duration("90m")
    5400
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise ValueError(f"--every {text!r} is not a duration; use e.g. 30s, 15m, 1h, 1d or 1w")
    return int(float(m.group(1)) * _UNITS.get(m.group(2) or "s", 1))


def _rows(text: str) -> int:
    """``--chunk-size``: a whole number of rows, at least one (0 and -5 are refused alike)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive whole number of rows; pass N >= 1, e.g. --chunk-size 5000"
        )
    return n


def add_parser(subparsers: Any) -> None:
    """Register ``infersight drift``."""
    p = subparsers.add_parser(
        "drift",
        help="offline drift of a data file against a reference profile",
        description="Compare a data file (CSV, Parquet, JSON lines, .npy) with a reference profile, window by window.",
    )
    p.add_argument("reference", help="reference profile written by `infersight profile`")
    p.add_argument("data", help="data file to check")
    add_drift_flags(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--fail-on-drift", action="store_true", help="exit with code 3 when any drift is found")
    p.set_defaults(func=run)


def add_drift_flags(p: argparse.ArgumentParser) -> None:
    """The flags that decide windows and verdicts, shared by ``drift`` and ``report`` (so the
    two commands judge the same inputs the same way)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--chunk-size", type=_rows, default=None, metavar="N", help="windows of N rows (N >= 1)")
    group.add_argument("--time-column", default=None, metavar="COL", help="cut windows by this timestamp column")
    p.add_argument("--every", default=None, metavar="DURATION", help="window length with --time-column (e.g. 1h, 1d)")
    p.add_argument("--columns", nargs="+", default=None, help="only these features")
    p.add_argument(
        "--alpha", type=float, default=None, help="significance level per feature and window (default 0.001)"
    )
    p.add_argument("--min-effect", type=float, default=None, help="numeric effect-size floor (default 0.1)")
    p.add_argument("--no-multivariate", action="store_true", help="skip the multivariate (MMD) test")
    p.add_argument(
        "--method",
        action="append",
        default=None,
        metavar="[FEATURE=]NAME",
        help="drift method by registered name, for every feature it applies to or for one FEATURE "
        "(repeatable; default ks+wasserstein for numbers, chi2+cohen_w for categories). Registered: " + _method_names(),
    )


def _method_names() -> str:
    from infersight.stats.drift import registry

    listed: str = ", ".join(
        f"{s.name} ({'/'.join(sorted(s.kinds)) or 'not per feature'})" for s in registry.available()
    )
    return listed


def make_policy(args: argparse.Namespace, ref: Any) -> Any:
    """The :class:`DriftPolicy` the flags ask for: ``--alpha``, ``--min-effect`` and each
    ``--method [FEATURE=]NAME`` (a bare NAME for every kind it applies to, later flags win)."""
    from infersight.stats.drift import DriftPolicy, registry

    methods: dict[str, str] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for text in getattr(args, "method", None) or []:
        feature, _, name = text.rpartition("=")
        spec = registry.get(name.strip())
        if feature:
            if feature not in ref.features:
                raise KeyError(f"--method {text!r}: {feature!r} is not in the reference; it has {_names(ref.features)}")
            overrides[feature] = {"method": spec.name}
        elif not spec.kinds:
            raise ValueError(
                f"--method {name!r} is not a per-feature method; choose one of {', '.join(registry.names())}"
            )
        else:
            methods.update(dict.fromkeys(spec.kinds, spec.name))
    policy = DriftPolicy(methods=methods, overrides=overrides)
    for feature in overrides:  # a method that does not fit the feature's kind is refused now
        policy.method_for(ref.features[feature])
    if getattr(args, "alpha", None) is not None:
        policy.alpha = args.alpha
    if getattr(args, "min_effect", None) is not None:
        policy.min_effect = args.min_effect
    return policy


@dataclass
class Prepared:
    """Inputs read and checked, ready for :func:`evaluate_windows`: the reference, the data's
    columns and rows, the reference features the data lacks, the windows and the policy."""

    reference: Any
    columns: dict[str, npt.NDArray[Any]]
    rows: int
    missing: list[str]
    windows: list[tuple[Any, Any, dict[str, npt.NDArray[Any]]]]
    policy: Any


def prepare(args: argparse.Namespace) -> Prepared:
    """Read ``args.reference`` and ``args.data`` and check them against each other; raises
    ``OSError``, ``ValueError``, ``KeyError``, ``ImportError`` or ``TypeError`` with the message
    a user should read (what, the value, the fix)."""
    from infersight.stats.io import read_table
    from infersight.stats.reference import Reference

    ref = Reference.load(args.reference)
    if args.columns:
        unknown = [c for c in args.columns if c not in ref.features]
        if unknown:
            raise KeyError(f"column(s) {unknown} are not in the reference; it has {_names(ref.features)}")
    cols, n = read_table(args.data)
    if n == 0:
        raise ValueError(
            f"data file {args.data!r} has no rows (a header only?); there is nothing to compare with the reference"
        )
    missing = _missing_features(ref, list(args.columns or ref.features), cols, args)
    windows = list(_windows(cols, n, args))
    return Prepared(ref, cols, n, missing, windows, make_policy(args, ref))


def run(args: argparse.Namespace) -> int:
    from infersight.cli import fail

    try:
        ready = prepare(args)
    except (OSError, ValueError, KeyError, ImportError, TypeError) as exc:
        return fail("drift", exc)
    report = evaluate_windows(ready.reference, ready.windows, args, missing=ready.missing, policy=ready.policy)
    if args.format == "json":
        print(json.dumps(report, allow_nan=False))
    else:
        print(_table(report, color=sys.stdout.isatty()))
    return 3 if args.fail_on_drift and report["summary"]["windows_with_drift"] else 0


def _names(names: Any, limit: int = 20) -> str:
    names = sorted(names)
    return (
        ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "") if names else "(none)"
    )


def _missing_features(ref: Any, wanted: Sequence[str], cols: Mapping[str, Any], args: argparse.Namespace) -> list[str]:
    """Reference features the data lacks; none of them present at all is unusable input.

    A drift check on data sharing no column with the reference would report "0 of 0 features
    drifted" and pass every gate: the wrong file, or a renamed schema, must stop the pipeline.
    """
    compared = [c for c in wanted if ref.features[c].kind != "timestamp"]
    if not any(c in cols for c in compared):
        raise ValueError(
            f"data file {args.data!r} has none of the features of reference {args.reference!r}: "
            f"expected {_names(compared)}; found {_names(cols)}. "
            "Check that the data and the reference belong to the same model, "
            "or rebuild the reference with `infersight profile`"
        )
    return [c for c in wanted if c not in cols]


def _windows(
    cols: Mapping[str, npt.NDArray[Any]], n: int, args: argparse.Namespace
) -> Iterator[tuple[Any, Any, dict[str, npt.NDArray[Any]]]]:
    if args.time_column:
        if not args.every:
            raise ValueError("--time-column needs --every DURATION (e.g. --every 1h)")
        if args.time_column not in cols:
            raise KeyError(f"time column {args.time_column!r} is not in the data; it has {sorted(cols)[:20]}")
        every = parse_duration(args.every)
        t = _as_seconds(cols[args.time_column], args.time_column)
        order = np.argsort(t, kind="stable")
        t = t[order]
        rest = {k: v[order] for k, v in cols.items() if k != args.time_column}
        slot = np.floor(t / every).astype(np.int64)
        bounds = np.flatnonzero(np.diff(slot)) + 1
        for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [n]])):
            s = int(slot[lo]) * every
            yield _iso(s), _iso(s + every), {k: v[lo:hi] for k, v in rest.items()}
        return
    if args.every:
        raise ValueError("--every needs --time-column COL")
    size = args.chunk_size or n
    for lo in range(0, max(n, 1), size):
        hi = min(lo + size, n)
        yield lo, hi, {k: v[lo:hi] for k, v in cols.items()}


def _as_seconds(col: npt.NDArray[Any], name: str) -> npt.NDArray[np.float64]:
    if col.dtype.kind in "iuf":
        return col.astype(np.float64)  # epoch seconds
    try:
        vals = (
            np.array([str(v).replace("Z", "") for v in col], dtype="datetime64[ns]") if col.dtype.kind != "M" else col
        )
    except ValueError as exc:
        raise ValueError(
            f"time column {name!r} has values that are not ISO-8601 times or epoch seconds ({exc})"
        ) from exc
    return vals.astype("datetime64[ns]").astype(np.int64) / 1e9


def _iso(seconds: float) -> str:
    return np.datetime64(int(seconds), "s").astype(str) + "Z"


def evaluate_windows(
    ref: Any,
    windows: list[tuple[Any, Any, dict[str, npt.NDArray[Any]]]],
    args: argparse.Namespace,
    missing: Sequence[str] = (),
    policy: Any = None,
) -> dict[str, Any]:
    """The JSON report for ``windows`` of (start, end, columns); ``missing`` names reference
    features the data does not have (reported in every window, and drift for the gate);
    ``policy`` defaults to :func:`make_policy` of ``args``."""
    from infersight.stats.drift import BBSE, DriftResult, explain
    from infersight.stats.multivariate import MMD
    from infersight.stats.windows import WindowSummary

    policy = policy if policy is not None else make_policy(args, ref)
    kinds = {k: f.kind for k, f in ref.features.items()}
    wanted = list(getattr(args, "columns", None) or ref.features)
    mmd = MMD().fit(ref) if ref.multivariate and not getattr(args, "no_multivariate", False) else None
    bbse = BBSE().fit(ref) if ref.confusion is not None else None

    def row(r: DriftResult, alpha: float) -> dict[str, Any]:
        return {**r.to_dict(), "reason": explain(r, alpha, policy.min_rows)}

    out = []
    for start, end, cols in windows:
        rows = len(next(iter(cols.values()))) if cols else 0
        feats = {k: cols[k] for k in wanted if k in cols}
        summary = WindowSummary.from_columns(feats, rows, kinds=kinds, keep_values=True)
        results = policy.evaluate(ref, summary, columns=wanted)
        for name in missing:
            results[name] = DriftResult(
                "presence", math.nan, math.nan, None, True, "feature_missing", ref.features[name].rows, 0
            )
        entry: dict[str, Any] = {
            "start": start,
            "end": end,
            "rows": rows,
            "features": {k: row(r, policy.alpha) for k, r in results.items()},
            "multivariate": {},
        }
        if mmd is not None and rows:
            entry["multivariate"] = row(mmd.score(cols), mmd.alpha)
        pred = ref.prediction
        if pred is not None and pred.name in cols:
            from infersight.stats.windows import FeatureWindow

            entry["prediction"] = row(
                policy.score_feature(pred, FeatureWindow.from_column(cols[pred.name], pred.kind, True)), policy.alpha
            )
            if bbse is not None:
                entry["label_shift"] = row(bbse.score(cols[pred.name]), bbse.alpha)
        out.append(entry)
    return {"windows": out, "summary": summarize(out, missing)}


def summarize(windows: Sequence[Mapping[str, Any]], missing: Sequence[str] = ()) -> dict[str, Any]:
    """What a long run comes to: how many windows drifted, which features how often, and the
    first window with drift. A window drifted when a feature (a missing one included) or the
    multivariate test did; this is what ``--fail-on-drift`` gates on."""
    counts: Counter[str] = Counter()
    first = None
    drifted = unjudged = 0
    for w in windows:
        # A window where no feature got a statistic (too few rows) passes a gate without having
        # been looked at; say how many, so `--chunk-size 20` does not read as "all clear".
        unjudged += not any(f["statistic"] is not None or f["drift"] for f in w["features"].values())
        names = [k for k, f in w["features"].items() if f["drift"]]
        if w["multivariate"].get("drift"):
            names.append("[multivariate]")
        counts.update(names)
        if names:
            drifted += 1
            first = first or {"start": w["start"], "end": w["end"]}
    return {
        "windows": len(windows),
        "windows_with_drift": drifted,
        "windows_not_judged": unjudged,
        "first_drift": first,
        "features": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "missing_features": list(missing),
    }


_RED, _GREEN, _DIM, _RESET = "\033[31m", "\033[32m", "\033[2m", "\033[0m"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}" if math.isfinite(x) else "-"
    return str(x)


def _table(report: Mapping[str, Any], color: bool) -> str:
    lines = []
    for w in report["windows"]:
        feats = w["features"]
        n_drift = sum(f["drift"] for f in feats.values())
        lines.append(
            f"window {w['start']} .. {w['end']} ({w['rows']} rows): {n_drift} of {len(feats)} features drifted"
        )
        header = f"  {'feature':<24} {'method':<15} {'statistic':>10} {'threshold':>10} {'p-value':>10}  verdict  cause (why)"
        lines.append(header)
        order = sorted(
            feats.items(),
            key=lambda kv: (not kv[1]["drift"], -((kv[1]["statistic"] or 0) / (kv[1]["threshold"] or 1)), kv[0]),
        )
        extra = [(f"[{k}]", w[k]) for k in ("multivariate", "prediction", "label_shift") if w.get(k)]
        for name, f in order + extra:
            verdict = "MISSING" if f["cause"] == "feature_missing" else "DRIFT" if f["drift"] else "ok"
            shown = f"{verdict:<7}"
            if color:
                shown = f"{_RED if f['drift'] else _GREEN}{verdict}{_RESET}" + " " * (7 - len(verdict))
            why = f"({f['reason']})" if f.get("reason") else ""
            cause = f["cause"] if f["drift"] and f["cause"] not in (None, "feature_missing") else ""
            lines.append(
                f"  {name[:24]:<24} {f['method'][:15]:<15} {_fmt(f['statistic']):>10} {_fmt(f['threshold']):>10} "
                f"{_fmt(f['p_value']):>10}  {shown}  {' '.join(x for x in (cause, why) if x)}".rstrip()
            )
        lines.append("")
    lines.extend(_summary_lines(report["summary"]))
    return "\n".join(lines).rstrip() + "\n"


def _summary_lines(s: Mapping[str, Any]) -> list[str]:
    if not s["windows_with_drift"]:
        lines = [f"summary: no drift in {s['windows']} window{'s' * (s['windows'] != 1)}"]
    else:
        first = s["first_drift"]
        lines = [
            f"summary: drift in {s['windows_with_drift']} of {s['windows']} windows; "
            f"first in window {first['start']} .. {first['end']}",
            "  drifted (windows): " + ", ".join(f"{k} ({v})" for k, v in s["features"].items()),
        ]
    if s["missing_features"]:
        lines.append("  missing from the data: " + ", ".join(s["missing_features"]))
    if s["windows_not_judged"]:
        lines.append(
            f"  not judged: {s['windows_not_judged']} of {s['windows']} windows had too few rows; "
            "use a larger --chunk-size or --every"
        )
    return lines
