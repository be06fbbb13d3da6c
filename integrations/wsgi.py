"""WSGI middleware: a server span, a request ID and ``http.server.request.duration`` per request,
for any WSGI application (Flask, Django, Falcon, Bottle, plain callables).

The response iterable is wrapped, not collected: chunks pass through as the server pulls them,
and the span and the duration end in ``close()``, after the last chunk has been written (the
OTel Flask instrumentation stops its clock before a streamed body is sent). The request's context
(span and request ID) is current while the app runs and around each step of its body iterator,
and never in between, so nothing leaks into the next request a server thread handles.

Frameworks can tell the middleware more through the environ: ``infersight.route`` (the route
template) and ``infersight.exception`` (an exception the framework turned into a 500 itself);
:mod:`infersight.integrations.flask` fills both.

Example:
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"ok"]
    >>> app = InferSightMiddleware(app, excluded_urls="/healthz")
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import Getter

from infersight._state import arm_signals, get_runtime
from infersight.integrations._exchange import Exchange
from infersight.integrations._exchange import fault as _fault
from infersight.integrations._options import resolve_options
from infersight.integrations._propagation import PROPAGATION, suppressed_context, w3c_parent
from infersight.integrations._request import RequestInfo, is_json, server_address_port

__all__ = ["InferSightMiddleware", "WSGIApp", "ROUTE_KEY", "EXCEPTION_KEY"]

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]

ROUTE_KEY = "infersight.route"
EXCEPTION_KEY = "infersight.exception"


class _EnvironGetter(Getter[WSGIEnviron]):
    """W3C propagators read ``traceparent``; WSGI spells it ``HTTP_TRACEPARENT``."""

    def get(self, carrier: WSGIEnviron, key: str) -> list[str] | None:
        value = carrier.get(_environ_key(key))
        return None if value is None else [value]

    def keys(self, carrier: WSGIEnviron) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()


class InferSightMiddleware:
    """Observe every HTTP request of a WSGI app.

    Args:
        app: the WSGI application to wrap.
        request_id_header: header carrying the request ID in and out (default ``X-Request-ID``;
            env ``INFERSIGHT_REQUEST_ID_HEADER``).
        excluded_urls: comma-separated regular expressions (or a list) searched in the path;
            matching requests get no telemetry at all (env ``INFERSIGHT_EXCLUDED_URLS``, then
            ``OTEL_PYTHON_FLASK_EXCLUDED_URLS``, then ``OTEL_PYTHON_EXCLUDED_URLS``).
        capture_bodies: log JSON request and response bodies as an ``ml.http.exchange`` event
            (opt-in; env ``INFERSIGHT_CAPTURE_BODIES``), redacted and size-capped.
        max_body_bytes: bodies larger than this are not captured (default 65536).

    >>> from flask import Flask
    >>> flask_app = Flask("demo")
    >>> flask_app.wsgi_app = InferSightMiddleware(flask_app.wsgi_app)
    """

    framework = "flask"
    # ``(environ) -> route template | None``, asked when the response starts (the framework's
    # request is still current then); frameworks may also leave the template at ROUTE_KEY.
    route_of: Callable[[WSGIEnviron], str | None] | None = None

    def __init__(
        self,
        app: WSGIApp,
        *,
        request_id_header: str | None = None,
        excluded_urls: str | Iterable[str] | None = None,
        capture_bodies: bool | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.options = resolve_options(
            self.framework,
            request_id_header=request_id_header,
            excluded_urls=excluded_urls,
            capture_bodies=capture_bodies,
            max_body_bytes=max_body_bytes,
        )
        self._key = self.options.wsgi_key
        self._header_lower = self.options.request_id_header.lower()
        self._propagation_keys: tuple[str, ...] | None = None
        self._propagation_for: frozenset[str] | None = None
        arm_signals()

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self.options.excluded is not None and self.options.is_excluded(path):
            return _Suppressed(self.app, environ, start_response)
        try:
            ex = Exchange.begin(get_runtime(), self.options, self._request_info(environ, path))
            # The request runs in a context of its own, entered once: the app's call, each body
            # chunk and close() run inside it (Context.run), with nothing to undo afterwards.
            ctx = contextvars.copy_context()
            ctx.run(ex.enter)
        except Exception:  # noqa: BLE001 - telemetry must never stop the request
            _fault("wsgi_begin")
            return self.app(environ, start_response)
        try:
            if self.options.capture_bodies and is_json(environ.get("CONTENT_TYPE")):
                ex.req_body = bytearray()
                environ["wsgi.input"] = _TeeInput(environ["wsgi.input"], ex)
            header = self.options.request_id_header
            header_lower = self._header_lower
            route_of = self.route_of

            def observed_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                try:
                    ex.status = int(status[:3])
                    if route_of is not None and ex.route is None:
                        ex.route = route_of(environ)
                    for k, _ in headers:
                        if k.lower() == header_lower:
                            break
                    else:
                        headers = list(headers) + [(header, ex.request_id)]
                    if self.options.capture_bodies:
                        ex.capture_response = any(k.lower() == "content-type" and is_json(v) for k, v in headers)
                except Exception:  # noqa: BLE001 - the original status and headers still go out
                    _fault("wsgi_start_response")
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            body = ctx.run(self.app, environ, observed_start_response)
        except BaseException as exc:
            ex.exc = exc
            ctx.run(_close, ex, environ)
            raise
        return _ObservedBody(body, ex, environ, ctx)

    def _request_info(self, environ: WSGIEnviron, path: str) -> RequestInfo:
        port = environ.get("SERVER_PORT")
        propagator = PROPAGATION.current()
        keys = self._propagation_keys
        if keys is None or self._propagation_for is not PROPAGATION.names:
            keys = self._propagation_keys = tuple(_environ_key(n) for n in PROPAGATION.names)
            self._propagation_for = PROPAGATION.names
        remote = None
        if PROPAGATION.w3c:
            traceparent = environ.get("HTTP_TRACEPARENT")
            if traceparent is not None and "HTTP_TRACESTATE" not in environ and "HTTP_BAGGAGE" not in environ:
                remote = w3c_parent(traceparent)
        propagated = False
        if remote is None and propagator is not None:
            for k in keys:
                if k in environ:
                    propagated = True
                    break
        address, server_port = server_address_port(
            environ.get("HTTP_HOST") or environ.get("SERVER_NAME"),
            int(port) if port and port.isdigit() else None,
        )
        return RequestInfo(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("wsgi.url_scheme", "http"),
            path,
            address,
            server_port,
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_USER_AGENT"),
            _protocol_version(environ.get("SERVER_PROTOCOL")),
            environ.get(self._key),
            environ if propagated else None,
            _GETTER,
            remote,
        )


def _environ_key(header: str) -> str:
    """A header name as a WSGI environ key: ``traceparent`` -> ``HTTP_TRACEPARENT``."""
    return "HTTP_" + header.upper().replace("-", "_")


_PROTOCOLS = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2": "2", "HTTP/2.0": "2.0", None: None}


def _protocol_version(server_protocol: str | None) -> str | None:
    hit = _PROTOCOLS.get(server_protocol, "")
    if hit != "":
        return hit
    if server_protocol and server_protocol.upper().startswith("HTTP/"):
        return server_protocol[5:]
    return None


def _close(ex: Exchange, environ: WSGIEnviron) -> None:
    """Finish the exchange (with its context entered), reading what the framework left us."""
    try:
        route = environ.get(ROUTE_KEY)
        if isinstance(route, str):
            ex.route = route
        framework_exc = environ.get(EXCEPTION_KEY)
        if ex.exc is None and isinstance(framework_exc, BaseException):
            ex.exc = framework_exc
        ex.finish()
    except Exception:  # noqa: BLE001
        _fault("wsgi_finish")


_END: Any = object()  # what next() returns at the end of a body, instead of raising


class _ObservedBody:
    """The app's response iterable, passed through chunk by chunk (each pulled inside the
    request's context); ``close()`` ends the span."""

    __slots__ = ("_body", "_iter", "_ex", "_environ", "_closed", "_ctx")

    def __init__(self, body: Iterable[bytes], ex: Exchange, environ: WSGIEnviron, ctx: contextvars.Context) -> None:
        self._body = body
        self._iter: Iterator[bytes] | None = None
        self._ex = ex
        self._environ = environ
        self._closed = False
        self._ctx = ctx

    def __iter__(self) -> _ObservedBody:
        return self

    def __next__(self) -> bytes:
        ex = self._ex
        try:
            if self._iter is None:
                self._iter = self._ctx.run(iter, self._body)
            chunk = self._ctx.run(next, self._iter, _END)  # no StopIteration to catch and re-raise
        except BaseException as exc:
            ex.exc = exc
            raise
        if chunk is _END:
            ex.responded()  # close() callbacks that run from here on are not timed
            raise StopIteration
        if ex.capture_response:
            try:
                ex.tee_response(chunk)
            except Exception:  # noqa: BLE001
                _fault("wsgi_body")
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ctx.run(self._close)

    def _close(self) -> None:
        ex = self._ex
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            ex.exc = ex.exc or exc
            raise
        finally:
            framework_exc = self._environ.get(EXCEPTION_KEY)
            if not ex.complete and ex.exc is None and framework_exc is None:
                # The server stopped pulling before the end: the client went away.
                ex.disconnected = True
            _close(ex, self._environ)


class _Suppressed:
    """Excluded paths: the app runs (and its body is pulled) under a context that records nothing."""

    def __init__(self, app: WSGIApp, environ: WSGIEnviron, start_response: StartResponse) -> None:
        self._ctx = suppressed_context()
        token = otel_context.attach(self._ctx)
        try:
            self._body = app(environ, start_response)
        finally:
            otel_context.detach(token)
        self._iter: Iterator[bytes] | None = None

    def __iter__(self) -> _Suppressed:
        return self

    def __next__(self) -> bytes:
        token = otel_context.attach(self._ctx)
        try:
            if self._iter is None:
                self._iter = iter(self._body)
            return next(self._iter)
        finally:
            otel_context.detach(token)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            token = otel_context.attach(self._ctx)
            try:
                close()
            finally:
                otel_context.detach(token)


class _TeeInput:
    """``wsgi.input`` that keeps a capped copy of what the app reads (the app's view is unchanged)."""

    def __init__(self, stream: Any, ex: Exchange) -> None:
        self._stream = stream
        self._ex = ex

    def _keep(self, data: bytes) -> bytes:
        try:
            self._ex.tee_request(data)
        except Exception:  # noqa: BLE001
            _fault("wsgi_body")
        return data

    def read(self, size: int = -1) -> bytes:
        return self._keep(self._stream.read(size) if size is not None and size >= 0 else self._stream.read())

    def readline(self, size: int = -1) -> bytes:
        return self._keep(self._stream.readline(size) if size is not None and size >= 0 else self._stream.readline())

    def readlines(self, hint: int = -1) -> list[bytes]:
        return [self._keep(line) for line in self._stream.readlines(hint)]

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            yield self._keep(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
