"""The process's infersight state, in one place: the configured runtime and its log pipeline,
the lock that serialises ``configure()``, the flush on SIGTERM/SIGINT, and the hooks that run
at interpreter exit and around ``fork()``.

Like structlog's ``_config``, one module owns the globals and everything else asks it. Imports
only go down: the public functions (:mod:`infersight._api`), ``@monitor`` and the middlewares
call in here; this module builds a :class:`~infersight._runtime.Runtime` (the OTel providers,
exporters and statistics) and a :class:`~infersight.logs.LogPipeline`, and never imports its
callers back.

Example:
    >>> rt = configure({"service_name": "churn-api", "exporter": "none", "log_output": "none"})
    >>> current_runtime() is rt is get_runtime(), log_pipeline() is rt.pipeline
    (True, True)
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from infersight import _stop
from infersight._runtime import Runtime, build_exporters
from infersight.config import _parse_bool, resolve_settings
from infersight.logs import LogPipeline

__all__ = ["configure", "current_runtime", "get_runtime", "log_pipeline", "arm_signals"]

_runtime: Runtime | None = None
_pipeline: LogPipeline | None = None
_lock = threading.Lock()


def configure(options: Mapping[str, Any], exporters: Sequence[Any] | None = None) -> Runtime:
    """Resolve ``options`` (explicit beats ``INFERSIGHT_*`` beats default) and point the process
    at them: the first call builds the runtime, later calls swap its settings and exporters; a
    call after ``shutdown()`` builds a new runtime (the stopped one cannot export again).
    ``exporters`` is (span, metric, log) given directly; ``None`` builds them from the settings.
    """
    global _runtime, _pipeline
    settings = resolve_settings(options)
    with _lock:
        ex = tuple(exporters) if exporters is not None else build_exporters(settings)
        rt = _runtime
        if rt is None or rt.shut_down:  # first use, or configure() after shutdown(): start afresh
            rt = Runtime(settings, replaces=rt)
            rt.apply(settings, ex)
            _runtime = rt
        else:
            rt.apply(settings, ex)
        if settings.flush_on_signal:
            _stop.watch_signals(current_runtime)
        else:
            _stop.unwatch_signals()
        _pipeline = LogPipeline(
            redact=settings.redact,
            max_payload_bytes=settings.max_payload_bytes,
            output=settings.log_output,
            otel_logger=rt.otel_logger,
        )
        rt.pipeline = _pipeline
        if settings.model and settings.trained_at is not None:
            rt.note_model(settings.model, settings.version or "unknown", settings.trained_at.timestamp())
        return rt


def current_runtime() -> Runtime | None:
    """The configured runtime, or ``None`` before the first ``configure()``."""
    return _runtime


def get_runtime() -> Runtime:
    """The configured runtime; configures with defaults (env, OTLP to localhost) on first use."""
    rt = _runtime
    if rt is not None and rt.pipeline is not None:
        if _stop._pending:  # configured off the main thread: install the signal flush from here if we can
            _stop.watch_signals(current_runtime)
        return rt
    return configure({})


def log_pipeline() -> LogPipeline:
    """The current structured-log pipeline (configures with defaults on first use)."""
    if _pipeline is None:
        configure({})
    assert _pipeline is not None
    return _pipeline


def arm_signals() -> None:
    """Install the flush on SIGTERM/SIGINT now, before any configure() (the middlewares call it
    while the app is built, on the main thread): a process whose first monitored call configures
    infersight from a server's worker thread could not install it later. Honours
    ``INFERSIGHT_FLUSH_ON_SIGNAL``; configure() has the last word."""
    try:
        rt = _runtime
        if rt is not None:
            wanted = rt.settings.flush_on_signal
        else:
            wanted = _parse_bool("INFERSIGHT_FLUSH_ON_SIGNAL", os.environ.get("INFERSIGHT_FLUSH_ON_SIGNAL") or "true")
        if wanted:
            _stop.watch_signals(current_runtime)
    except Exception:  # noqa: BLE001 - a malformed variable is reported by configure() instead
        pass


def _at_exit() -> None:
    # Bounded like every stop flush: an unreachable collector must not hold the exit for the
    # exporters' own timeouts and retries (see infersight._stop).
    if _runtime is not None:
        _stop.flush_within(_runtime, _stop.STOP_FLUSH_SECONDS, what="shutdown")


def _before_fork() -> None:
    if _runtime is not None:
        _runtime.before_fork()


def _after_fork_child() -> None:
    if _runtime is not None:
        _runtime.after_fork_in_child()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_child)
