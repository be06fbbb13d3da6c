"""``infersight processor``: run the companion service.

Example:
    $ infersight processor --db sqlite:///./infersight.db --window 60s --web 127.0.0.1:8318
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["add_parser", "main", "LOG_LEVELS"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "processor",
        help="run the companion service (OTLP in, windows, API)",
        description="Receive OTLP (gRPC and HTTP), keep mergeable windowed statistics per model "
        "and feature, and serve them over HTTP. Flags override the config file.",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (sections: listen, storage, ingest, security, models, evaluation, alerts, quality, slo)",
    )
    p.add_argument("--otlp-grpc", metavar="ADDR", help="OTLP/gRPC listen address (default 127.0.0.1:4317)")
    p.add_argument("--otlp-http", metavar="ADDR", help="OTLP/HTTP listen address (default 127.0.0.1:4318)")
    p.add_argument("--web", metavar="ADDR", help="API, /metrics and /healthz address (default 127.0.0.1:8318)")
    p.add_argument(
        "--db", metavar="URL", help="storage: sqlite:///path.db (default ./infersight.db) or postgresql://..."
    )
    p.add_argument("--window", metavar="DURATION", help="base window, e.g. 1s, 60s, 5m (default 60s)")
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' (also INFERSIGHT_PROCESSOR_TOKEN or security.token_file)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"logging level: {', '.join(LOG_LEVELS)} (default INFO)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from infersight._extras import MissingExtra, needs_extra
    from infersight.cli import fail

    # Every import below may need the processor extra (yaml for --config, uvicorn and grpc for
    # the service, psycopg for a PostgreSQL URL): a missing one names the extra, not a traceback.
    try:
        with needs_extra("processor", "the processor"):
            return _run(args)
    except MissingExtra as exc:
        return fail("processor", exc)


def _run(args: argparse.Namespace) -> int:
    from infersight.cli import fail
    from infersight.processor.config import ConfigError, load_config
    from infersight.processor.storage import StorageError

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {
        "otlp_grpc": args.otlp_grpc,
        "otlp_http": args.otlp_http,
        "web": args.web,
        "db": args.db,
        "window": args.window,
        "token": args.token,
    }
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        return fail("processor", f"configuration error: {exc}")
    from infersight.processor.service import Processor

    try:
        processor = Processor(config)
    except StorageError as exc:
        return fail("processor", exc, 1)
    try:
        return processor.run()
    except OSError as exc:
        processor.stop()
        return fail("processor", exc, 1)


def main(argv: list[str] | None = None) -> int:
    from infersight.cli import SubcommandParser

    parser = argparse.ArgumentParser(prog="python -m infersight.processor")
    sub = parser.add_subparsers(dest="command", parser_class=SubcommandParser)
    add_parser(sub)
    args = parser.parse_args(["processor", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
