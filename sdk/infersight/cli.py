"""The ``infersight`` command. Each subcommand lives in the module named after its concept and
exposes ``add_parser(subparsers)``; the parser sets ``func`` to a callable returning the exit code.
Modules are imported lazily so ``infersight profile`` never pays for the processor's imports.

Example:
    $ infersight profile train.csv --model churn -o reference.json
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# (subcommand, module that implements it, one-line help)
_COMMANDS: list[tuple[str, str, str]] = [
    ("profile", "infersight.reference", "build a reference profile and schema from training data"),
    ("drift", "infersight.drift_cli", "offline drift of a data file against a reference profile"),
    ("processor", "infersight.processor.cli", "run the companion service (OTLP in, windows, API)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infersight", description="ML observability on OpenTelemetry.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in _COMMANDS:
        try:
            mod = importlib.import_module(module)
            add = getattr(mod, "add_parser")
        except (ImportError, AttributeError) as exc:
            p = sub.add_parser(name, help=f"{help_} (unavailable: {exc})")
            p.set_defaults(func=lambda args, _e=exc, _n=name: _unavailable(_n, _e))
            continue
        add(sub)
    return parser


def _unavailable(name: str, exc: BaseException) -> int:
    print(
        f"infersight {name} is not available here: {exc}. "
        "Install the extras it needs, e.g. pip install 'infersight[processor]'.",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
