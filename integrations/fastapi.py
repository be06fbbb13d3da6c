"""FastAPI / Starlette: the ASGI middleware and a one-line ``instrument_app``.

Example:
    >>> from fastapi import FastAPI
    >>> from infersight.integrations.fastapi import instrument_app
    >>> app = instrument_app(FastAPI(), excluded_urls="/healthz,/metrics")

or, the Starlette way::

    app.add_middleware(InferSightMiddleware, excluded_urls="/healthz")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from infersight.integrations.asgi import InferSightMiddleware as _ASGIMiddleware
from infersight.integrations.asgi import starlette_route

__all__ = ["InferSightMiddleware", "instrument_app", "starlette_route"]

App = TypeVar("App")


class InferSightMiddleware(_ASGIMiddleware):
    """The ASGI middleware, reading ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` among its fallbacks.

    Works on any ASGI app; on FastAPI and Starlette the span carries the route template
    (``/items/{item_id}``), never the raw path.

    >>> from starlette.applications import Starlette
    >>> app = Starlette()
    >>> app.add_middleware(InferSightMiddleware, request_id_header="X-Request-ID")
    """

    framework = "fastapi"


def instrument_app(app: App, *, native_telemetry: bool = False, **options: Any) -> App:
    """Add :class:`InferSightMiddleware` to a FastAPI or Starlette app (once) and return the app.

    ``options`` are the middleware's keyword arguments (``request_id_header``,
    ``excluded_urls``, ``capture_bodies``, ``max_body_bytes``). Call it before the app starts
    serving (Starlette refuses middleware added later).

    FastAPI's own telemetry (FastAPI 0.165 and later switch it on as soon as an OpenTelemetry
    provider exists, infersight's included) makes a server span and an
    ``http.server.request.duration`` series of its own, plus spans for dependencies, the
    endpoint and serialisation: with infersight's middleware every request would be counted
    twice and cost four extra spans. So ``instrument_app`` switches it off for this app, the
    same as ``FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})``.
    Pass ``native_telemetry=True`` to keep it: FastAPI then owns the server span and the
    middleware enriches it (request ID) instead of making a second one, as it does for
    ``opentelemetry-instrumentation-fastapi``. Either way FastAPI's telemetry is given the
    excluded paths (when the app set no ``exclude`` of its own).

    >>> from fastapi import FastAPI
    >>> app = instrument_app(FastAPI())
    >>> instrument_app(app) is app  # a second call changes nothing
    True
    """
    user_middleware = getattr(app, "user_middleware", None)
    if user_middleware is None:
        raise TypeError(
            f"instrument_app() expects a FastAPI or Starlette app, got {type(app).__name__}; "
            "for another ASGI app wrap it: app = InferSightMiddleware(app)"
        )
    if any(isinstance(m.cls, type) and issubclass(m.cls, _ASGIMiddleware) for m in user_middleware):
        return app
    options_seen = InferSightMiddleware(_no_app, **options).options  # validates now, not at start-up
    app.add_middleware(InferSightMiddleware, **options)  # type: ignore[attr-defined]
    _exclude_from_native_telemetry(app, options_seen.is_excluded)
    if not native_telemetry:
        _switch_off_native_telemetry(app)
    return app


async def _no_app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
    return None


def _switch_off_native_telemetry(app: Any) -> None:
    """What ``FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})`` sets.
    FastAPI reads its telemetry settings from this dict on every request; an app without it
    (Starlette, older FastAPI) has no native telemetry to switch off."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(tracing=False, metrics=False, logs=False)


def _exclude_from_native_telemetry(app: Any, is_excluded: Callable[[str], bool]) -> None:
    """FastAPI's native telemetry (``FastAPI(telemetry=...)``) opens its server span outside
    every middleware; tell it our excluded paths too, unless the app chose its own rule."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict) and "exclude" in config and config["exclude"] is None:
        config["exclude"] = lambda scope: scope.get("type") == "http" and is_excluded(scope.get("path", ""))
