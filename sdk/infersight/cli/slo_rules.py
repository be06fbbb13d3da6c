"""``infersight slo-rules``: the Prometheus recording and alerting rules equivalent to the SLOs of
a processor config (see :mod:`infersight.processor.slo.rules`).

Example:
    $ infersight slo-rules --config processor.yaml -o infersight-slo.rules.yml
    $ promtool check rules infersight-slo.rules.yml
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``infersight slo-rules``."""
    p = subparsers.add_parser(
        "slo-rules",
        help="write the Prometheus rules equivalent to a config's SLOs",
        description="Write Prometheus recording rules (error ratios per alert window, error budget "
        "remaining) and alerting rules (multi-window burn rates with the minimum-events guard, budget "
        "spent, no data) for the objectives of the slo: section of a processor config. They read the "
        "SDK's metrics as the OpenTelemetry collector's prometheus exporter names them.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the processor's YAML config (its slo: section)")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="where to write the rules (YAML; default standard output; replaced if it exists)",
    )
    p.add_argument(
        "--namespace",
        default="",
        metavar="NS",
        help="the prometheus exporter's namespace setting, if the collector sets one (metric names start NS_)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from infersight.cli import fail
    from infersight.processor.config import ConfigError, load_config
    from infersight.processor.slo.rules import MetricNames, RulesError, render_rules, skipped
    from infersight.processor.slo.settings import SLOSettings

    if args.namespace and not args.namespace.replace("_", "").isalnum():
        return fail("slo-rules", f"--namespace {args.namespace!r}: use letters, digits and '_' (as the exporter does)")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return fail("slo-rules", exc)
    settings = cfg.sections.get("slo")
    if not isinstance(settings, SLOSettings) or not settings.objectives:
        return fail(
            "slo-rules", f"{args.config}: the slo: section has no objectives; add slo.objectives (see docs/slo.md)"
        )
    try:
        text = render_rules(settings, MetricNames(namespace=args.namespace), source=str(args.config))
    except RulesError as exc:
        return fail("slo-rules", f"{args.config}: {exc}")
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    # written beside the target and renamed: Prometheus never reads half a rule file
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=str(out.parent or Path(".")))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        return fail("slo-rules", f"-o {str(out)!r}: cannot write ({exc.strerror}); choose a writable path")
    left = skipped(settings)
    note = f" (skipped, no Prometheus series: {', '.join(o.name for o in left)})" if left else ""
    done = len(settings.objectives) - len(left)
    print(f"infersight slo-rules: wrote the rules of {done} objective(s) to {out}{note}", file=sys.stderr)
    return 0
