"""One HTTP request/response as both middlewares see it: the :class:`Exchange`.

The ASGI and WSGI adapters translate their protocol (ASGI scope and messages, WSGI environ and
``start_response``) into the same few calls:

    ex = Exchange.begin(rt, opts, request)   # request ID scope, W3C extract, server span
    ex.enter() / ex.exit()                   # make the request's context current (ASGI); WSGI
                                             # enters once, in the request's own contextvars.Context
    ex.status = ...; ex.exc = ...            # what the adapter saw: status sent, app exception
    ex.tee_request(chunk) / tee_response()   # opt-in body capture
    ex.responded()                           # the last byte went to the server: the clock stops
    ex.finish()                              # span attributes, end, duration metric, body log

so the HTTP semantic conventions, the request-ID rules and the fault handling are written once.
Everything in here is guarded by the callers: a fault is counted with :func:`fault` and the
request goes on untouched.

Example:
    >>> import infersight
    >>> from infersight.integrations._options import resolve_options
    >>> from infersight.integrations._request import RequestInfo
    >>> infersight.configure(exporter="none", log_output="none")
    >>> from infersight._state import get_runtime
    >>> req = RequestInfo("GET", "http", "/predict", "api.local", 80, None, None, "1.1", None)
    >>> ex = Exchange.begin(get_runtime(), resolve_options("asgi", env={}), req)
    >>> ex.status = 200
    >>> ex.enter(); ex.finish(); ex.exit()
    >>> len(ex.request_id) > 0
    True
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import DefaultGetter, Getter
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

from infersight import request_context as rc
from infersight._spans import LiteSpan
from infersight._state import get_runtime
from infersight.integrations._body_log import log_bodies, tee
from infersight.integrations._duration import duration_histogram, metric_attributes
from infersight.integrations._options import MiddlewareOptions
from infersight.integrations._propagation import PROPAGATION
from infersight.integrations._request import KNOWN_METHODS, RequestInfo, connection_attributes

__all__ = ["Exchange", "CLIENT_DISCONNECTED", "fault"]

CLIENT_DISCONNECTED = "ClientDisconnected"
_DICT_GETTER: Getter[Any] = DefaultGetter()
_SERVER = SpanKind.SERVER
_perf_counter = time.perf_counter
_time_ns = time.time_ns
_new_request_id = rc.new_request_id
_valid_request_id = rc.is_valid_request_id
_request_id_var = rc._request_id  # noqa: SLF001 - same project


def fault(reason: str) -> None:
    """Count and log-once a middleware fault (``ml.telemetry.dropped{ml.telemetry.reason}``)."""
    try:
        get_runtime().fault("http_" + reason)
    except Exception:  # noqa: BLE001 - fault reporting itself must never raise
        pass


class Exchange:
    """One HTTP request/response as the middlewares see it. Not thread-safe: one per request."""

    __slots__ = (
        "rt",
        "opts",
        "request_id",
        "span",
        "owned",
        "ctx",
        "_ctx_token",
        "_rid_token",
        "t0",
        "t_done",
        "end_ns",
        "method",
        "scheme",
        "route",
        "status",
        "complete",
        "disconnected",
        "exc",
        "req_body",
        "resp_body",
        "req_truncated",
        "resp_truncated",
        "capture_response",
    )
    rt: Any
    opts: MiddlewareOptions
    request_id: str
    span: Any  # the server span: ours, the SDK's, or another instrumentation's it enriches
    owned: bool
    ctx: Any  # the OTel context made current for the request (None when the span is not ours)
    _ctx_token: Any
    _rid_token: Any
    t0: float
    t_done: float | None  # perf_counter when the last byte of the response went to the server
    end_ns: int | None  # the same moment on the span clock
    method: str
    scheme: str
    route: str | None
    status: int | None
    complete: bool
    disconnected: bool
    exc: BaseException | None
    req_body: bytearray | None
    resp_body: bytearray | None
    req_truncated: bool
    resp_truncated: bool
    capture_response: bool

    def __init__(self, rt: Any, opts: MiddlewareOptions) -> None:
        self.rt = rt
        self.opts = opts
        self._ctx_token = self._rid_token = self.ctx = None
        self.route = self.status = self.exc = self.req_body = self.resp_body = self.t_done = self.end_ns = None
        self.complete = self.disconnected = self.req_truncated = self.resp_truncated = False
        self.capture_response = False

    # -- start -------------------------------------------------------------------------------

    @classmethod
    def begin(cls, rt: Any, opts: MiddlewareOptions, req: RequestInfo) -> Exchange:
        """Pick the request ID, continue the caller's trace and open (or adopt) the server span."""
        ex = cls(rt, opts)
        incoming = req.incoming_id
        if incoming is None:
            request_id = ex.request_id = _new_request_id()
        elif _valid_request_id(incoming):
            request_id = ex.request_id = incoming
        else:
            request_id = ex.request_id = _new_request_id()
            # The bad value itself is never echoed, stored or logged: only counted.
            rt.stats.count_dropped("invalid_request_id")
        method = req.method
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        ex.method = method
        ex.scheme = req.scheme
        ex.t0 = _perf_counter()
        current = rc.current_span()
        if current.is_recording() and getattr(current, "kind", None) is SpanKind.SERVER:
            # Another instrumentation (e.g. opentelemetry-instrumentation-fastapi) owns the
            # server span: enrich it rather than making a second one.
            ex.span = current
            ex.owned = False
            current.set_attribute("ml.request.id", request_id)
            return ex
        parent = None
        if req.remote is not None:
            # What the W3C propagator returns: the caller's span in an otherwise empty context.
            parent = rc.span_context(NonRecordingSpan(req.remote), otel_context.Context())
        elif req.carrier is not None:
            parent = PROPAGATION.current().extract(req.carrier, getter=req.getter or _DICT_GETTER)
        # One fresh dict, handed to start_span (which takes it over): the attributes that depend
        # on the connection only come from a small cache as one dict, copied.
        attrs = connection_attributes(req).copy()
        attrs["http.request.method"] = method
        attrs["url.path"] = req.path
        attrs["ml.request.id"] = request_id
        if method == "_OTHER":
            attrs["http.request.method_original"] = req.method[:32]
        span = ex.span = rt.span_tracer.start_span(method, parent, _SERVER, attrs)
        ex.owned = True
        ex.ctx = rc.span_context(span, parent)
        return ex

    # -- context -----------------------------------------------------------------------------

    def enter(self) -> None:
        """Make this request's span and request ID current (paired with :meth:`exit`)."""
        self._rid_token = _request_id_var.set(self.request_id)
        if self.ctx is not None:
            self._ctx_token = rc.attach(self.ctx)

    def exit(self) -> None:
        rc.leave(self._ctx_token, self._rid_token)
        self._ctx_token = self._rid_token = None

    # -- bodies (opt-in capture) ---------------------------------------------------------------

    def tee_request(self, chunk: bytes) -> None:
        self.req_body, self.req_truncated = tee(self.req_body, self.req_truncated, chunk, self.opts.max_body_bytes)

    def tee_response(self, chunk: bytes) -> None:
        self.resp_body, self.resp_truncated = tee(self.resp_body, self.resp_truncated, chunk, self.opts.max_body_bytes)

    # -- end -----------------------------------------------------------------------------------

    def responded(self) -> None:
        """The last byte of the response has gone to the server: the request's duration and its
        span end here, not when the app returns (work it does after the response, such as
        Starlette's background tasks or WSGI close callbacks, is not the client's wait)."""
        self.complete = True
        self.t_done = _perf_counter()
        self.end_ns = _time_ns()

    def finish(self) -> None:
        """Close the exchange: status, route and error on the span, the duration metric, and the
        optional body log. Call with the request's context entered (exemplars link the metric
        point to the span that is current).

        An exception raised after a complete response below 500 (a failing background task)
        does not make the request an error: the client got its answer. It is recorded on the
        span as an exception event, dated after the span's end."""
        t_done = self.t_done
        duration = (t_done if t_done is not None else _perf_counter()) - self.t0
        span = self.span
        exc = self.exc
        status = self.status
        error_type: str | None = None
        if exc is None and status is not None and status < 500 and (self.complete or not self.disconnected):
            pass  # the usual answer: nothing went wrong
        elif exc is not None and t_done is not None and status is not None and status < 500:
            pass  # raised after the complete answer: recorded on the span below, not an error
        elif self.disconnected and not self.complete:
            error_type = CLIENT_DISCONNECTED
        elif exc is not None:
            error_type = type(exc).__qualname__
            if status is None:
                status = 500  # what the server will answer for an exception before the response
        elif status is None:
            error_type = "_OTHER"  # the app returned without ever starting a response
        else:
            error_type = str(status)
        route = self.route
        owned = self.owned
        if span.is_recording():
            end_attrs: dict[str, Any] = {}
            if status is not None:
                end_attrs["http.response.status_code"] = status
            if route:
                end_attrs["http.route"] = route
                if owned:
                    span.update_name(f"{self.method} {route}")
            if exc is not None and error_type != CLIENT_DISCONNECTED:
                span.record_exception(exc)
            if error_type is not None:
                end_attrs["error.type"] = error_type
                if (status is not None and status >= 500) or (exc is not None and error_type != CLIENT_DISCONNECTED):
                    span.set_status(Status(StatusCode.ERROR, error_type))
            if end_attrs:
                if type(span) is LiteSpan:
                    span.set_trusted(end_attrs)
                else:
                    span.set_attributes(end_attrs)
        if self.opts.capture_bodies and (self.req_body is not None or self.resp_body is not None):
            log_bodies(
                self.rt.settings,
                self.request_id,
                self.method,
                self.route,
                status,
                (self.req_body, self.req_truncated),
                (self.resp_body, self.resp_truncated),
            )
        if not owned:
            return  # the owner of the span records its own HTTP metrics and ends it
        span.end(self.end_ns)
        key = (self.method, self.scheme, status, route, error_type)
        duration_histogram(self.rt).record(duration, key, metric_attributes(key), span.get_span_context())
