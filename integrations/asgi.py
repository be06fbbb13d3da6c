"""Pure ASGI middleware: a server span, a request ID and ``http.server.request.duration`` per
HTTP request, for any ASGI 3 application (Starlette, FastAPI, Quart, Litestar, raw ASGI).

It follows Starlette's own middleware: a class with ``__call__(scope, receive, send)`` that wraps
``send`` to see the status and headers and wraps ``receive`` to notice a client going away.
Bodies stream through one message at a time and are never buffered; the span and the duration
end when the app returns, that is after the last body chunk (or the disconnect). Lifespan and
websocket scopes, and excluded paths, go straight to the app.

Example:
    >>> from starlette.applications import Starlette
    >>> app = InferSightMiddleware(Starlette(), excluded_urls="/healthz")
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, MutableMapping

from opentelemetry import context as otel_context

from infersight._runtime import get_runtime
from infersight.integrations._common import Exchange, RequestInfo, is_json, resolve_options, suppressed_context
from infersight.integrations._common import fault as _fault

__all__ = ["InferSightMiddleware", "ASGIApp", "Scope", "Receive", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


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
        self._route_getter = route_getter or starlette_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan, websocket: untouched
            return
        if self.options.is_excluded(scope.get("path", "")):
            token = otel_context.attach(suppressed_context())
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        try:
            rt = get_runtime()
            ex = Exchange.begin(rt, self.options, self._request_info(scope))
            ex.enter()
        except Exception:  # noqa: BLE001 - telemetry must never stop the request
            _fault("asgi_begin")
            await self.app(scope, receive, send)
            return
        try:
            await self._observe(ex, scope, receive, send)
        finally:
            ex.exit()

    def _request_info(self, scope: Scope) -> RequestInfo:
        headers: dict[str, str] = {}
        for key, value in scope.get("headers") or ():
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            # Repeated headers join with "," as HTTP allows; the propagators split them again.
            headers[name] = headers[name] + "," + text if name in headers else text
        scheme = scope.get("scheme") or "http"
        server = scope.get("server")
        client = scope.get("client")
        return RequestInfo(
            method=scope.get("method", "GET"),
            scheme=scheme,
            path=scope.get("path", ""),
            host=headers.get("host") or (server[0] if server else None),
            server_port=(server[1] if server and len(server) > 1 else None) or _DEFAULT_PORTS.get(scheme),
            client=client[0] if client else None,
            user_agent=headers.get("user-agent"),
            protocol_version=scope.get("http_version"),
            incoming_id=headers.get(self.options.request_id_header.lower()),
            carrier=headers,
        )

    async def _observe(self, ex: Exchange, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        header = self._header
        capture = self.options.capture_bodies

        async def observed_receive() -> Message:
            message = await receive()
            try:
                kind = message["type"]
                if kind == "http.disconnect":
                    if not ex.complete:
                        ex.disconnected = True
                elif capture and kind == "http.request" and ex.req_body is not None:
                    ex.tee_request(message.get("body", b""))
            except Exception:  # noqa: BLE001
                _fault("asgi_receive")
            return message

        async def observed_send(message: Message) -> None:
            try:
                kind = message["type"]
                if kind == "http.response.start":
                    ex.status = int(message["status"])
                    message = _with_request_id(message, header, ex.request_id)
                    if capture:
                        ex.capture_response = _is_json_response(message)
                elif kind == "http.response.body":
                    if capture and ex.capture_response:
                        ex.tee_response(message.get("body", b""))
                    if not message.get("more_body", False):
                        ex.complete = True
            except Exception:  # noqa: BLE001 - the original message still goes out
                _fault("asgi_send")
            try:
                await send(message)
            except OSError:
                ex.disconnected = True  # ASGI 2.4 servers raise on send to a closed client
                raise

        if capture:
            _maybe_capture_request(ex, scope)
        try:
            await self.app(scope, observed_receive, observed_send)
        except BaseException as exc:
            ex.exc = exc
            raise
        finally:
            try:
                ex.route = self._route_getter(scope, root_path)
                ex.finish()
            except Exception:  # noqa: BLE001
                _fault("asgi_finish")


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

