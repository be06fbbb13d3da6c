"""Pure ASGI middleware: a server span, a request ID and ``http.server.request.duration`` per
HTTP request, for any ASGI 3 application (Starlette, FastAPI, Quart, Litestar, raw ASGI).

It follows Starlette's own middleware: a class with ``__call__(scope, receive, send)`` that wraps
``send`` to see the status and headers and wraps ``receive`` to notice a client going away.
Bodies stream through one message at a time and are never buffered; the span and the duration
end once the last body chunk has been handed to the server (background tasks the app runs after
it are not timed), or when the app returns without one (an error, a disconnect). Websocket
scopes and excluded paths go straight to the app; lifespan messages pass unchanged, and when the
app reports its shutdown done, everything infersight still holds is exported first (uvicorn ends
a SIGTERM shutdown by re-raising the signal, so the process dies without running ``atexit``).

Example:
    >>> from starlette.applications import Starlette
    >>> app = InferSightMiddleware(Starlette(), excluded_urls="/healthz")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context

from infersight._state import arm_signals, current_runtime, get_runtime
from infersight._stop import STOP_FLUSH_SECONDS, flush_within
from infersight.integrations._exchange import Exchange
from infersight.integrations._exchange import fault as _fault
from infersight.integrations._options import resolve_options
from infersight.integrations._propagation import PROPAGATION, suppressed_context, w3c_parent
from infersight.integrations._request import RequestInfo, is_json, server_address_port

__all__ = ["InferSightMiddleware", "ASGIApp", "Scope", "Receive", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


SHUTDOWN_FLUSH_SECONDS = STOP_FLUSH_SECONDS


def _flushing_at_shutdown(send: Send) -> Send:
    """The lifespan ``send``, passing every message unchanged; the app's shutdown reply
    (``lifespan.shutdown.complete`` or ``.failed``) waits until what infersight holds (queued
    spans and logs, metrics and feature statistics since the last export) is exported, for at
    most ``SHUTDOWN_FLUSH_SECONDS`` whatever the exporters' own timeouts and retries (an
    unreachable collector must not hold a container stop for their 10 s each). By then the
    server has finished every request. Servers that end on a re-raised signal (uvicorn on
    SIGTERM) never run ``atexit``, where this would else happen.
    """

    async def lifespan_send(message: Message) -> None:
        if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            _flush_within(SHUTDOWN_FLUSH_SECONDS)
        await send(message)

    return lifespan_send


def _flush_within(seconds: float) -> None:
    rt = current_runtime()
    if rt is not None:
        # The event loop waits: nothing else is left to serve.
        flush_within(rt, seconds)


def starlette_route(scope: Scope, root_path: str) -> str | None:
    """The route template of the endpoint that handled the request (Starlette and FastAPI put
    the matched route in ``scope["route"]``), with the prefix of any ``Mount`` it sits under.

    Never the raw path: unmatched requests (404) have no route.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    mount_prefix = scope.get("root_path", "")[len(root_path) :] if scope.get("root_path") else ""
    return mount_prefix + template if mount_prefix else template


class InferSightMiddleware:
    """Observe every HTTP request of an ASGI app.

    Args:
        app: the ASGI application to wrap.
        request_id_header: header carrying the request ID in and out (default ``X-Request-ID``;
            env ``INFERSIGHT_REQUEST_ID_HEADER``).
        excluded_urls: comma-separated regular expressions (or a list) searched in the path;
            matching requests get no telemetry at all (env ``INFERSIGHT_EXCLUDED_URLS``, then
            ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``, then ``OTEL_PYTHON_EXCLUDED_URLS``).
        capture_bodies: log JSON request and response bodies as an ``ml.http.exchange`` event
            (opt-in; env ``INFERSIGHT_CAPTURE_BODIES``), redacted and size-capped like payload logs.
        max_body_bytes: bodies larger than this are not captured (default 65536; env
            ``INFERSIGHT_MAX_BODY_BYTES``). The app always sees the whole body.
        route_getter: ``(scope, root_path) -> template | None``; defaults to Starlette's
            ``scope["route"]``.

    >>> async def app(scope, receive, send): ...
    >>> wrapped = InferSightMiddleware(app, request_id_header="X-Correlation-ID")
    """

    framework = "asgi"

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str | None = None,
        excluded_urls: str | Iterable[str] | None = None,
        capture_bodies: bool | None = None,
        max_body_bytes: int | None = None,
        route_getter: Callable[[Scope, str], str | None] | None = None,
    ) -> None:
        self.app = app
        self.options = resolve_options(
            "fastapi" if self.framework in ("asgi", "fastapi") else self.framework,
            request_id_header=request_id_header,
            excluded_urls=excluded_urls,
            capture_bodies=capture_bodies,
            max_body_bytes=max_body_bytes,
        )
        self._header = self.options.asgi_header
        self._wanted: dict[bytes, int] | None = None
        self._wanted_for: frozenset[str] | None = None
        self._route_getter = route_getter or starlette_route
        arm_signals()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = _flushing_at_shutdown(send)
            await self.app(scope, receive, send)  # websocket: untouched
            return
        if self.options.excluded is not None and self.options.is_excluded(scope.get("path", "")):
            token = otel_context.attach(suppressed_context())
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        try:
            ex = Exchange.begin(get_runtime(), self.options, self._request_info(scope))
            ex.enter()
        except Exception:  # noqa: BLE001 - telemetry must never stop the request
            _fault("asgi_begin")
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        channel = _Channel(ex, receive, send, self._header, self.options.capture_bodies)
        try:
            if channel.capture:
                _maybe_capture_request(ex, scope)
            await self.app(scope, channel.receive, channel.send)
        except BaseException as exc:
            ex.exc = exc
            raise
        finally:
            try:
                ex.route = self._route_getter(scope, root_path)
                ex.finish()
            except Exception:  # noqa: BLE001
                _fault("asgi_finish")
            ex.exit()

    def _request_info(self, scope: Scope) -> RequestInfo:
        """One pass over the raw ASGI headers, picking out the few we read; no dict of all
        headers unless the request carries trace context to extract."""
        propagator = PROPAGATION.current()
        wanted = self._wanted
        if wanted is None or self._wanted_for is not PROPAGATION.names:
            wanted = self._wanted = _wanted_headers(self._header, PROPAGATION.names)
            self._wanted_for = PROPAGATION.names
        host = user_agent = incoming = traceparent = None
        propagated = False
        headers = scope.get("headers") or ()
        get = wanted.get
        for key, value in headers:
            slot = get(key)
            if slot is None:
                if key.islower():
                    continue
                slot = get(key.lower())  # ASGI asks servers for lower-case names; not all do
                if slot is None:
                    continue
            if slot == _HOST:
                host = value
            elif slot == _USER_AGENT:
                user_agent = value
            elif slot == _REQUEST_ID:
                # Repeated: joined as HTTP allows, which makes it invalid and so replaced.
                incoming = value if incoming is None else incoming + b"," + value
            elif traceparent is None and (key == b"traceparent" or key.lower() == b"traceparent"):
                traceparent = value
            else:
                propagated = True  # any other propagation header, or a second traceparent
        remote = None
        if traceparent is not None:
            if not propagated and PROPAGATION.w3c:
                remote = w3c_parent(traceparent.decode("latin-1"))
            propagated = remote is None
        scheme = scope.get("scheme") or "http"
        server = scope.get("server")
        client = scope.get("client")
        port = (server[1] if server and len(server) > 1 else None) or _DEFAULT_PORTS.get(scheme)
        address, port = server_address_port(host if host is not None else (server[0] if server else None), port)
        return RequestInfo(
            scope.get("method", "GET"),
            scheme,
            scope.get("path", ""),
            address,
            port,
            client[0] if client else None,
            user_agent.decode("latin-1") if user_agent is not None else None,
            scope.get("http_version"),
            incoming.decode("latin-1") if incoming is not None else None,
            _carrier(headers) if propagated and propagator is not None else None,
            None,
            remote,
        )


_HOST, _USER_AGENT, _REQUEST_ID, _PROPAGATION = range(4)


def _wanted_headers(request_id_header: bytes, propagation: frozenset[str]) -> dict[bytes, int]:
    wanted = {name.encode("latin-1"): _PROPAGATION for name in propagation}
    wanted.update({b"host": _HOST, b"user-agent": _USER_AGENT, request_id_header: _REQUEST_ID})
    return wanted


def _carrier(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """All headers as ``{lower-case name: value}`` for the propagators (only built for requests
    that carry trace context). Repeated headers join with "," as HTTP allows; the propagators
    split them again."""
    carrier: dict[str, str] = {}
    for key, value in headers:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        carrier[name] = carrier[name] + "," + text if name in carrier else text
    return carrier


class _Channel:
    """``receive`` and ``send`` as the app sees them: ``send`` notes the status, adds the request
    ID header and notices the last body chunk; ``receive`` notices a client going away. A small
    class, not two closures per request; nothing else happens per ASGI message."""

    __slots__ = ("ex", "_receive", "_send", "header", "capture")

    def __init__(self, ex: Exchange, receive: Receive, send: Send, header: bytes, capture: bool) -> None:
        self.ex = ex
        self._receive = receive
        self._send = send
        self.header = header
        self.capture = capture

    async def receive(self) -> Message:
        message = await self._receive()
        try:
            kind = message["type"]
            ex = self.ex
            if kind == "http.disconnect":
                if not ex.complete:
                    ex.disconnected = True
            elif self.capture and kind == "http.request" and ex.req_body is not None:
                ex.tee_request(message.get("body", b""))
        except Exception:  # noqa: BLE001
            _fault("asgi_receive")
        return message

    async def send(self, message: Message) -> None:
        ex = self.ex
        last = False
        try:
            kind = message["type"]
            if kind == "http.response.start":
                ex.status = int(message["status"])
                message = _with_request_id(message, self.header, ex.request_id)
                if self.capture:
                    ex.capture_response = _is_json_response(message)
            elif kind == "http.response.body":
                if self.capture and ex.capture_response:
                    ex.tee_response(message.get("body", b""))
                if not message.get("more_body", False):
                    ex.complete = last = True
        except Exception:  # noqa: BLE001 - the original message still goes out
            _fault("asgi_send")
        try:
            await self._send(message)
        except OSError:
            ex.disconnected = True  # ASGI 2.4 servers raise on send to a closed client
            raise
        if last:
            ex.responded()  # whatever the app does from here on (background tasks) is not timed


def _with_request_id(message: Message, header: bytes, request_id: str) -> Message:
    """The response-start message plus our request-ID header, unless the app set one itself.

    A new message dict and header list, so the app's own objects are never mutated."""
    headers = list(message.get("headers") or ())
    for key, _ in headers:
        if key.lower() == header:
            return message
    headers.append((header, request_id.encode("latin-1")))
    out = dict(message)
    out["headers"] = headers
    return out


def _is_json_response(message: Message) -> bool:
    for key, value in message.get("headers") or ():
        if key.lower() == b"content-type":
            return is_json(value.decode("latin-1"))
    return False


def _maybe_capture_request(ex: Exchange, scope: Scope) -> None:
    """Capture the request body only when it says it is JSON."""
    for key, value in scope.get("headers") or ():
        if key.lower() == b"content-type":
            if is_json(value.decode("latin-1")):
                ex.req_body = bytearray()
            return
