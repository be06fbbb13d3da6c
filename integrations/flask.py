"""Flask: the WSGI middleware plus the two things only Flask knows, the matched route template
(``request.url_rule``) and the exception behind a 500 Flask rendered itself.

Example:
    >>> from flask import Flask
    >>> from infersight.integrations.flask import instrument_app
    >>> app = instrument_app(Flask("churn"), excluded_urls="/healthz")
"""

from __future__ import annotations

from typing import Any, TypeVar

from infersight.integrations._exchange import fault
from infersight.integrations.wsgi import EXCEPTION_KEY, ROUTE_KEY, WSGIApp
from infersight.integrations.wsgi import InferSightMiddleware as _WSGIMiddleware

__all__ = ["InferSightMiddleware", "instrument_app"]

FlaskApp = TypeVar("FlaskApp")
_HOOKED = "_infersight_hooks"


class InferSightMiddleware(_WSGIMiddleware):
    """The WSGI middleware; given a Flask app (or its ``wsgi_app``) it also reports route
    templates and the exceptions behind Flask's own 500 pages. Works on any WSGI app.

    >>> from flask import Flask
    >>> app = Flask("demo")
    >>> app.wsgi_app = InferSightMiddleware(app.wsgi_app, excluded_urls="/healthz")
    """

    framework = "flask"
    route_of = staticmethod(lambda environ: _route_template(environ.get("werkzeug.request")))

    def __init__(self, app: WSGIApp, **options: Any) -> None:
        flask_app: Any = getattr(app, "__self__", app)  # app.wsgi_app is a bound method of the Flask app
        if _is_flask(flask_app):
            _install_hooks(flask_app)
            inner: WSGIApp = flask_app.wsgi_app  # read before ``is`` narrows flask_app to a WSGIApp
            if app is flask_app:
                app = inner
        super().__init__(app, **options)


def instrument_app(app: FlaskApp, **options: Any) -> FlaskApp:
    """Wrap ``app.wsgi_app`` with :class:`InferSightMiddleware` (once) and return the app.

    ``options`` are the middleware's keyword arguments (``request_id_header``,
    ``excluded_urls``, ``capture_bodies``, ``max_body_bytes``).

    >>> from flask import Flask
    >>> app = instrument_app(Flask("demo"))
    >>> instrument_app(app) is app
    True
    """
    if not _is_flask(app):
        raise TypeError(
            f"instrument_app() expects a Flask app, got {type(app).__name__}; "
            "for another WSGI app wrap it: app = InferSightMiddleware(app)"
        )
    if not isinstance(app.wsgi_app, _WSGIMiddleware):  # type: ignore[attr-defined]
        app.wsgi_app = InferSightMiddleware(app.wsgi_app, **options)  # type: ignore[attr-defined]
    return app


def _is_flask(obj: Any) -> bool:
    try:
        from flask import Flask
    except ImportError:  # pragma: no cover - flask extra not installed
        return False
    return isinstance(obj, Flask)


def _route_template(request: Any) -> str | None:
    """The matched rule of a Flask request (``None`` unmatched, or not a Flask request). Flask
    matches the URL before any ``before_request`` hook runs, so a hook that answers early does
    not hide the route."""
    rule = getattr(request, "url_rule", None)
    return rule.rule if rule is not None else None


def _install_hooks(app: Any) -> None:
    """Put the exception behind a 500 Flask rendered itself, and the route of a request whose
    exception escapes Flask (no response was started), where the middleware reads them.

    The route of every other request is read when its response starts, from the request werkzeug
    keeps in the environ: a per-request Flask hook (``before_request``, ``url_value_preprocessor``)
    would cost more than everything else the middleware does in Flask's request path."""
    if getattr(app, _HOOKED, False):
        return
    from flask import got_request_exception, request

    def note_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
        try:
            environ = request.environ
            environ[EXCEPTION_KEY] = exception
            route = _route_template(request._get_current_object())  # type: ignore[attr-defined]
            if route is not None:
                environ[ROUTE_KEY] = route
        except Exception:  # noqa: BLE001
            fault("flask_exception")

    got_request_exception.connect(note_exception, app, weak=False)
    setattr(app, _HOOKED, True)
