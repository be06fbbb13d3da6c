"""FastAPI / Starlette: the ASGI middleware and a one-line ``instrument_app``.

Example:
    >>> from fastapi import FastAPI
    >>> from infersight.integrations.fastapi import instrument_app
    >>> app = instrument_app(FastAPI(), excluded_urls="/healthz,/metrics")

or, the Starlette way::

    app.add_middleware(InferSightMiddleware, excluded_urls="/healthz")
"""

from __future__ import annotations

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


def instrument_app(app: App, **options: Any) -> App:
    """Add :class:`InferSightMiddleware` to a FastAPI or Starlette app (once) and return the app.

    ``options`` are the middleware's keyword arguments (``request_id_header``,
    ``excluded_urls``, ``capture_bodies``, ``max_body_bytes``). Call it before the app starts
    serving (Starlette refuses middleware added later).

    The middleware sits inside Starlette's ``ServerErrorMiddleware``, so an instrumentation
    that wraps the whole app (``opentelemetry-instrumentation-fastapi``) stays outside it and
    its server span is enriched instead of duplicated.

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
    app.add_middleware(InferSightMiddleware, **options)  # type: ignore[attr-defined]
    return app
