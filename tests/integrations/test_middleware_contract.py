"""The middleware contract, in process: faults never change a response, app exceptions propagate
as the very same object, non-HTTP scopes pass through untouched, options parse with clear errors,
and opt-in body capture logs redacted JSON without changing what the app reads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import infersight
from infersight.config import ConfigError
from infersight.integrations import _exchange, _options
from infersight.integrations import asgi as asgi_module
from infersight.integrations.asgi import InferSightMiddleware as ASGIMiddleware
from infersight.integrations.wsgi import InferSightMiddleware as WSGIMiddleware


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    infersight.configure(span_exporter=exporter, log_output="none")
    yield exporter


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


def asgi_get(app: Any, path: str = "/", **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(kw.pop("method", "GET"), path, **kw)

    return asyncio.run(go())


def test_a_fault_in_the_middleware_never_changes_the_response(spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    faults: list[str] = []
    monkeypatch.setattr(_exchange, "fault", lambda reason: faults.append(reason))

    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("telemetry bug")

    import infersight.integrations.asgi as asgi_mod
    import infersight.integrations.wsgi as wsgi_mod

    monkeypatch.setattr(asgi_mod, "_fault", lambda reason: faults.append(reason))
    monkeypatch.setattr(wsgi_mod, "_fault", lambda reason: faults.append(reason))
    monkeypatch.setattr(_exchange.Exchange, "finish", broken)
    monkeypatch.setattr(asgi_mod, "_with_request_id", broken)
    r = asgi_get(ASGIMiddleware(ok_app))
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert "asgi_send" in faults and "asgi_finish" in faults

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fine"]

    from werkzeug.test import Client

    monkeypatch.setattr(_exchange.Exchange, "begin", broken)
    resp = Client(WSGIMiddleware(wsgi_app)).get("/")
    assert resp.status_code == 200 and resp.data == b"fine"
    assert "wsgi_begin" in faults


def test_app_exceptions_propagate_as_the_same_object(spans: InMemorySpanExporter) -> None:
    raised = KeyError("model missing")

    async def bad_asgi(scope: Any, receive: Any, send: Any) -> None:
        raise raised

    async def call() -> None:
        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            pass

        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "scheme": "http"}
        await ASGIMiddleware(bad_asgi)(scope, receive, send)

    with pytest.raises(KeyError) as info:
        asyncio.run(call())
    assert info.value is raised

    def bad_wsgi(environ: Any, start_response: Any) -> list[bytes]:
        raise raised

    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/y",
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
    }
    with pytest.raises(KeyError) as info2:
        WSGIMiddleware(bad_wsgi)(env, lambda *a: None)
    assert info2.value is raised

    infersight.flush()
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert {s.attributes["url.path"] for s in server} == {"/x", "/y"}
    assert all(
        s.attributes["error.type"] == "KeyError" and s.attributes["http.response.status_code"] == 500 for s in server
    )


def _after_the_response_asgi(fail: bool, marks: dict[str, Any]) -> Any:
    """A complete 200 answer, then work the client does not wait for (as Starlette runs
    background tasks): optionally failing."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        marks["after_ns"], marks["after_perf"] = time.time_ns(), time.perf_counter()
        await asyncio.sleep(0.05)
        if fail:
            raise marks["exc"]

    return app


def _after_the_response_wsgi(fail: bool, marks: dict[str, Any]) -> Any:
    """The WSGI counterpart: the body's ``close()`` (where Flask runs ``call_on_close``
    callbacks) does work after the last chunk, optionally failing."""

    class Body:
        def __iter__(self) -> Any:
            yield b"ok"

        def close(self) -> None:
            marks["after_ns"], marks["after_perf"] = time.time_ns(), time.perf_counter()
            time.sleep(0.05)
            if fail:
                raise marks["exc"]

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    return app


def _run_after_the_response(kind: str, app: Any) -> None:
    if kind == "asgi":

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            pass

        scope = {"type": "http", "method": "GET", "path": "/after", "headers": [], "scheme": "http"}
        asyncio.run(ASGIMiddleware(app)(scope, receive, send))
    else:
        env = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/after",
            "wsgi.url_scheme": "http",
            "SERVER_NAME": "h",
            "SERVER_PORT": "80",
        }
        body = WSGIMiddleware(app)(env, lambda *a: None)
        try:
            assert b"".join(body) == b"ok"
        finally:
            body.close()


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("fail", [False, True])
def test_work_after_the_response_is_neither_timed_nor_an_error(kind: str, fail: bool) -> None:
    """The span and ``http.server.request.duration`` end with the last byte of the response;
    background work after it (Starlette background tasks, WSGI close callbacks) is not the
    client's wait. If that work raises, the exception still propagates as the same object and
    is recorded on the span, but the request, answered 200, is not counted as an error."""
    from infersight.testing import InMemoryTelemetry

    telemetry = InMemoryTelemetry.install(log_output="none")
    marks: dict[str, Any] = {"exc": LookupError("cache write failed")}
    app = (_after_the_response_asgi if kind == "asgi" else _after_the_response_wsgi)(fail, marks)
    before = time.perf_counter()
    if fail:
        with pytest.raises(LookupError) as info:
            _run_after_the_response(kind, app)
        assert info.value is marks["exc"]
    else:
        _run_after_the_response(kind, app)
    telemetry.flush()
    [span] = [s for s in telemetry.finished_spans() if s.kind.name == "SERVER"]
    assert span.end_time <= marks["after_ns"]  # ended before the work after the response began
    assert span.attributes["http.response.status_code"] == 200
    assert "error.type" not in span.attributes and span.status.status_code == StatusCode.UNSET
    assert [e.name for e in span.events] == (["exception"] if fail else [])
    if fail:
        assert span.events[0].attributes["exception.type"] == "LookupError"
    [point] = telemetry.points("http.server.request.duration")
    assert point.count == 1 and "error.type" not in point.attributes
    assert point.attributes["http.response.status_code"] == 200
    assert point.sum <= marks["after_perf"] - before  # the wait ended before the work after it


def test_websocket_scopes_pass_through_untouched(spans: InMemorySpanExporter) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope=scope, receive=receive, send=send)

    async def receive() -> dict:
        return {}

    async def send(message: dict) -> None:
        pass

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    asyncio.run(ASGIMiddleware(app)(scope, receive, send))
    assert seen["scope"] is scope and seen["receive"] is receive and seen["send"] is send
    infersight.flush()
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("outcome", ["complete", "failed"])
def test_lifespan_messages_pass_unchanged_and_shutdown_waits_for_the_export(
    spans: InMemorySpanExporter, outcome: str
) -> None:
    """The server gets the app's own lifespan messages (the same objects, in order) and, by the
    time the shutdown reply reaches it, what the app recorded is exported: a server that ends by
    re-raising SIGTERM (uvicorn) never runs ``atexit``."""

    @infersight.monitor(model="lifespan-contract")
    def last_call(x: float) -> float:
        return x

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        await send(startup := {"type": "lifespan.startup.complete"})
        sent.append(startup)
        assert (await receive())["type"] == "lifespan.shutdown"
        last_call(1.0)  # e.g. a final prediction made while shutting down: still only queued
        reply = {"type": f"lifespan.shutdown.{outcome}"}
        if outcome == "failed":
            reply["message"] = "model unload failed"
        sent.append(reply)
        await send(reply)

    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []
    received: list[tuple[dict, tuple]] = []

    async def receive() -> dict:
        return inbox.pop(0)

    async def send(message: dict) -> None:
        received.append((message, spans.get_finished_spans()))

    asyncio.run(ASGIMiddleware(app)({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert [m for m, _ in received] == sent and all(a is b for (a, _), b in zip(received, sent))
    assert received[1][0] == {
        "type": f"lifespan.shutdown.{outcome}",
        **({"message": "model unload failed"} if outcome == "failed" else {}),
    }
    exported_at_reply = received[1][1]
    assert [s.attributes.get("ml.model.name") for s in exported_at_reply] == ["lifespan-contract"]


def test_the_shutdown_reply_is_not_held_past_its_bound_by_a_hung_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """An export that never returns (a collector that accepts and never answers) costs the
    shutdown at most ``SHUTDOWN_FLUSH_SECONDS``; the reply still reaches the server."""
    release, returned = threading.Event(), threading.Event()

    class Hung(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            release.wait(30)
            returned.set()
            return super().export(spans)

    infersight.configure(span_exporter=Hung(), log_output="none")
    monkeypatch.setattr(asgi_module, "SHUTDOWN_FLUSH_SECONDS", 0.2)

    @infersight.monitor(model="hung-export")
    def call(x: float) -> float:
        return x

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        call(1.0)
        await send({"type": "lifespan.shutdown.complete"})

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "lifespan.shutdown"}

    async def send(message: dict) -> None:
        sent.append(message)
        assert not returned.is_set()  # the reply went out while the export still hung

    try:
        asyncio.run(ASGIMiddleware(app)({"type": "lifespan"}, receive, send))
        assert sent == [{"type": "lifespan.shutdown.complete"}]
    finally:
        release.set()
        infersight.configure(exporter="none", log_output="none")  # the next test configures its own


def test_options_from_arguments_and_environment() -> None:
    opts = _options.resolve_options(
        "flask",
        env={
            "INFERSIGHT_REQUEST_ID_HEADER": "X-Correlation-ID",
            "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "^/ready$",
            "OTEL_PYTHON_EXCLUDED_URLS": "^/metrics$",
            "INFERSIGHT_CAPTURE_BODIES": "true",
            "INFERSIGHT_MAX_BODY_BYTES": "100",
        },
    )
    assert opts.request_id_header == "X-Correlation-ID" and opts.wsgi_key == "HTTP_X_CORRELATION_ID"
    assert opts.is_excluded("/ready") and not opts.is_excluded("/metrics")  # the specific variable wins
    assert opts.capture_bodies and opts.max_body_bytes == 100
    explicit = _options.resolve_options("flask", excluded_urls=["/a", "/b"], env={"INFERSIGHT_EXCLUDED_URLS": "/c"})
    assert explicit.is_excluded("/b/1") and not explicit.is_excluded("/c")
    with pytest.raises(ConfigError, match="request_id_header='X Bad'"):
        _options.resolve_options("asgi", request_id_header="X Bad", env={})
    with pytest.raises(ConfigError, match="INFERSIGHT_EXCLUDED_URLS"):
        _options.resolve_options("asgi", env={"INFERSIGHT_EXCLUDED_URLS": "(unclosed"})


def test_body_capture_logs_redacted_json_and_the_app_reads_the_whole_body() -> None:
    logs = InMemoryLogRecordExporter()
    infersight.configure(log_exporter=logs, log_output="none", redact=["password"])
    received: list[bytes] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"score": 0.9}'})

    app = ASGIMiddleware(echo, capture_bodies=True, max_body_bytes=64)
    small = b'{"tenure": 3, "password": "hunter2"}'
    assert asgi_get(app, method="POST", content=small, headers={"content-type": "application/json"}).status_code == 200
    big = b'{"x": "' + b"a" * 500 + b'"}'
    assert asgi_get(app, method="POST", content=big, headers={"content-type": "application/json"}).status_code == 200
    assert received == [small, big]  # the app's view of the body is unchanged
    infersight.flush()
    events = [
        r.log_record.attributes
        for r in logs.get_finished_logs()
        if r.log_record.attributes.get("event.name") == "ml.http.exchange"
    ]
    assert len(events) == 2
    assert "hunter2" not in events[0]["ml.inputs"] and '"tenure": 3' in events[0]["ml.inputs"]
    assert events[0]["ml.outputs"] == '{"score": 0.9}'
    assert events[1]["ml.http.body_truncated"] == "request"


def test_trace_context_and_request_id_are_found_whatever_the_header_spelling(spans: InMemorySpanExporter) -> None:
    """The header scan skips extraction for requests without trace context; make sure the ones
    that do carry it (traceparent, baggage alone, names in upper case) still continue the trace,
    and a repeated request-ID header is replaced, never echoed."""
    from opentelemetry import baggage

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((infersight.current_request_id(), baggage.get_baggage("tenant")))
        await ok_app(scope, receive, send)

    def call(headers: list[tuple[bytes, bytes]]) -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/p", "headers": headers, "scheme": "http"}
        asyncio.run(ASGIMiddleware(app)(scope, receive, send))
        return dict(sent[0]["headers"]).get(b"x-request-id")

    echoed = call([(b"Traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode()), (b"X-Request-ID", b"r-1")])
    assert echoed == b"r-1" and seen[-1][0] == "r-1"
    call([(b"baggage", b"tenant=acme")])
    assert seen[-1][1] == "acme"
    echoed = call([(b"x-request-id", b"a"), (b"x-request-id", b"b")])
    assert echoed not in (b"a", b"b", b"a,b") and seen[-1][0] == echoed.decode()

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append((infersight.current_request_id(), baggage.get_baggage("tenant")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/w",
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
        "HTTP_TRACEPARENT": f"00-{trace_id}-00f067aa0ba902b7-01",
        "HTTP_BAGGAGE": "tenant=wsgi",
    }
    body = WSGIMiddleware(wsgi_app)(env, lambda *a: None)
    list(body)
    body.close()  # type: ignore[attr-defined]
    assert seen[-1][1] == "wsgi"
    infersight.flush()
    server = {s.attributes["url.path"]: s for s in spans.get_finished_spans() if s.kind.name == "SERVER"}
    assert f"{server['/w'].context.trace_id:032x}" == trace_id
    traced = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER" and s.attributes["url.path"] == "/p"]
    assert f"{traced[0].context.trace_id:032x}" == trace_id  # the first /p request carried traceparent


def test_connection_attributes_whatever_the_shape_of_the_asgi_scope(spans: InMemorySpanExporter) -> None:
    """Server and client entries as tuples, lists or absent; Host header or not: the server span
    gets the same attributes (they are remembered per connection shape, so each shape counts)."""

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        pass

    shapes = [
        ({"server": ("10.0.0.1", 8080), "client": ("10.0.0.9", 5000)}, [], ("10.0.0.1", 8080, "10.0.0.9")),
        ({"server": ["10.0.0.1", 8080], "client": ["10.0.0.9", 5000]}, [], ("10.0.0.1", 8080, "10.0.0.9")),
        ({"server": ("10.0.0.1", 8080)}, [(b"host", b"api.local:9000")], ("api.local", 9000, None)),
        ({}, [(b"host", b"api.local")], ("api.local", 80, None)),
        ({}, [], (None, 80, None)),  # the scheme's default port, as before the cache
    ]
    for i, (extra, headers, _) in enumerate(shapes):
        scope = {"type": "http", "method": "GET", "path": f"/shape/{i}", "headers": headers, "scheme": "http", **extra}
        asyncio.run(ASGIMiddleware(ok_app)(scope, receive, send))
    infersight.flush()
    server = {s.attributes["url.path"]: s.attributes for s in spans.get_finished_spans() if s.kind.name == "SERVER"}
    for i, (_, _, (address, port, client)) in enumerate(shapes):
        a = server[f"/shape/{i}"]
        assert (a.get("server.address"), a.get("server.port"), a.get("client.address")) == (address, port, client)


def test_flask_route_is_known_even_when_a_before_request_hook_answers(spans: InMemorySpanExporter) -> None:
    from flask import Flask

    from infersight.integrations.flask import instrument_app

    app = Flask("early")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.before_request
    def refuse() -> Any:
        return ("no", 401)

    instrument_app(app)
    response = app.test_client().get("/items/7")
    assert response.status_code == 401
    response.close()  # the body's close() ends the span
    assert infersight.flush()
    [span] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert span.attributes["http.route"] == "/items/<int:item_id>"
    assert span.name == "GET /items/<int:item_id>" and span.attributes["http.response.status_code"] == 401


def test_flask_route_is_known_when_the_exception_escapes_flask(spans: InMemorySpanExporter) -> None:
    """With PROPAGATE_EXCEPTIONS Flask starts no response: the route comes from the exception
    signal, and the exception still reaches the server unchanged."""
    from flask import Flask

    from infersight.integrations.flask import instrument_app

    app = Flask("propagating")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.get("/fail/<name>")
    def fail(name: str) -> dict:
        raise KeyError(name)

    instrument_app(app)
    with pytest.raises(KeyError):
        app.test_client().get("/fail/x")
    assert infersight.flush()
    [span] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert span.attributes["http.route"] == "/fail/<name>" and span.attributes["error.type"] == "KeyError"
    assert span.name == "GET /fail/<name>" and span.attributes["http.response.status_code"] == 500


def test_wsgi_request_context_stays_inside_the_request(spans: InMemorySpanExporter) -> None:
    """The request ID and span are current while the app runs and while its body is pulled,
    and nothing of the request is left current in the server's thread afterwards."""
    from opentelemetry import trace

    seen: list[Any] = []

    def app(environ: Any, start_response: Any) -> Any:
        seen.append(("call", infersight.current_request_id(), trace.get_current_span().is_recording()))
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            seen.append(("chunk", infersight.current_request_id(), trace.get_current_span().is_recording()))
            yield b"ok"

        return body()

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "HTTP_X_REQUEST_ID": "req-42",
    }
    result = WSGIMiddleware(app)(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(result) == b"ok"
    result.close()
    assert seen == [("call", "req-42", True), ("chunk", "req-42", True)]
    assert infersight.current_request_id() is None and not trace.get_current_span().is_recording()
    assert infersight.flush()
    [span] = [s for s in spans.get_finished_spans() if s.attributes.get("ml.request.id") == "req-42"]
    assert span.attributes["http.response.status_code"] == 200


def test_nested_middlewares_keep_one_request_id(spans: InMemorySpanExporter) -> None:
    """An instrumented app mounting another instrumented app: one server span (the inner
    middleware enriches the outer one's), and the span, the response header (once) and the code
    inside agree on one request ID."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def inner_view(request: Any) -> JSONResponse:
        return JSONResponse({"rid": infersight.current_request_id()})

    inner = ASGIMiddleware(Starlette(routes=[Route("/score", inner_view)]))
    outer = ASGIMiddleware(Starlette(routes=[Mount("/v1", app=inner)]))
    r = asgi_get(outer, "/v1/score")
    assert r.status_code == 200
    infersight.flush()
    [server] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert r.json()["rid"] == r.headers["x-request-id"] == server.attributes["ml.request.id"]
    assert r.headers.get_list("x-request-id") == [server.attributes["ml.request.id"]]
