"""The ``infersight`` command. Each subcommand lives in the module named after its concept and
exposes ``add_parser(subparsers)``; the parser sets ``func`` to a callable returning the exit code.
Modules are imported lazily so ``infersight profile`` never pays for the processor's imports.

Errors a user can meet print one line, ``infersight COMMAND: what, the value, the fix``, through
:func:`fail`; a missing optional package names the extra that installs it (:mod:`._extras`).

Example:
    $ infersight profile train.csv --model churn -o reference.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from infersight import __version__
from infersight._extras import MissingExtra, needs_extra
from infersight.cli._blas import one_blas_thread

__all__ = ["main", "build_parser", "fail", "error_text", "SubcommandParser"]

# (subcommand, module that implements it, one-line help, extra its imports need)
_COMMANDS: list[tuple[str, str, str, str | None]] = [
    ("profile", "infersight.cli.profile", "build a reference profile and schema from training data", None),
    ("drift", "infersight.cli.drift", "offline drift of a data file against a reference profile", "stats"),
    ("slo-rules", "infersight.cli.slo_rules", "write the Prometheus rules equivalent to a config's SLOs", "processor"),
    ("report", "infersight.cli.report", "a static HTML drift report with plots (from files or a processor)", "stats"),
    ("processor", "infersight.processor.cli", "run the companion service (OTLP in, windows, API)", "processor"),
    (
        "demo",
        "infersight.processor.demo",
        "run the whole loop on this machine (processor, model server, traffic)",
        "demo",
    ),
]
# Commands that own their process and ask for one BLAS thread, before their imports load numpy.
_ONE_BLAS_THREAD = {"profile", "drift", "report"}
# Commands whose objects are frozen out of the collector once they are done, when ``main`` runs
# as the program (``argv`` not given): the interpreter's last collection at exit then skips the
# tens of thousands of objects numpy and pyarrow created at import, 15 ms of CPU (4% of an
# ``infersight profile`` run on the 1M x 20 bench file). Nothing of the command is left to
# collect: it wrote its file and returned.
_FREEZE_AT_EXIT = {"profile"}


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser that rejects unknown arguments itself.

    argparse hands a subcommand's leftovers back to the top-level parser, which then prints
    its own usage (``infersight [-h] COMMAND ...``) for a mistyped ``--chunk-sise``; the user
    needs the usage of the command they typed.
    """

    # One signature for typeshed's overloads (the namespace's type passes through): what
    # argparse itself does at run time.
    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` one subcommand's part of it: a command imports
    nothing of the others (``drift`` lists its methods from the drift registry in its help)."""
    parser = argparse.ArgumentParser(prog="infersight", description="ML observability on OpenTelemetry.")
    parser.add_argument("--version", action="version", version=f"infersight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SubcommandParser)
    for name, module, help_, extra in _COMMANDS:
        if only is not None and name != only:
            continue
        try:
            with needs_extra(extra, f"infersight {name}") if extra else contextlib.nullcontext():
                mod = importlib.import_module(module)
            add = mod.add_parser
        except (ImportError, AttributeError) as exc:  # MissingExtra is an ImportError
            p = sub.add_parser(name, help=f"{help_} (unavailable: {exc})", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=lambda args, _e=exc, _n=name: fail(_n, _e))
            continue
        add(sub)
    return parser


def error_text(exc: BaseException) -> str:
    """The message of ``exc`` as a user should read it (``str(KeyError)`` adds quotes)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def fail(command: str, exc: BaseException | str, code: int = 2) -> int:
    """Print ``infersight COMMAND: message`` on stderr and return ``code`` (the exit code)."""
    text = exc if isinstance(exc, str) else error_text(exc)
    print(f"infersight {command}: {text}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    # The first word names the command unless it is an option (-h, --version) or a typo, for
    # which the whole parser answers (usage and the list of commands).
    first = args_in[0] if args_in else None
    if first in _ONE_BLAS_THREAD:
        one_blas_thread()
    parser = build_parser(first if first in {name for name, *_ in _COMMANDS} else None)
    args = parser.parse_args(args_in)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Commands import some of their extra's packages only when they get to them (drift loads
    # scipy once the data is read): a missing one is the same one-line answer either way.
    extra = {name: extra for name, _, _, extra in _COMMANDS}.get(args.command)
    try:
        with needs_extra(extra, f"infersight {args.command}") if extra else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except MissingExtra as exc:
        return fail(args.command, exc)
    finally:
        if argv is None and args.command in _FREEZE_AT_EXIT:
            gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
