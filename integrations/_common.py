"""What the ASGI and WSGI middlewares share: options, exclusions, request IDs, the server span.

Both middlewares translate their protocol (ASGI scope and messages, WSGI environ and
``start_response``) into the same few calls on an :class:`Exchange`:

    ex = Exchange.begin(rt, opts, request)   # request ID scope, W3C extract, server span
    ex.enter() / ex.exit()                   # make the request's context current (ASGI); WSGI
                                             # enters once, in the request's own contextvars.Context
    ex.status = ...; ex.exc = ...            # what the adapter saw: status sent, app exception
    ex.finish()                              # span attributes, end, duration metric, body log

so the HTTP semantic conventions, the request-ID rules and the fault handling are written once.
Everything in here is guarded by the callers: a fault is counted with ``rt.fault`` and the request
goes on untouched.

Example:
    >>> opts = resolve_options("asgi", excluded_urls="/healthz,/metrics", env={})
    >>> opts.is_excluded("/healthz"), opts.is_excluded("/predict")
    (True, False)
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import DefaultGetter, Getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from infersight import request_context as rc
from infersight._spans import LiteSpan
from infersight.config import ConfigError

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "DURATION_BUCKETS",
    "MiddlewareOptions",
    "RequestInfo",
    "Propagation",
    "PROPAGATION",
    "w3c_parent",
    "server_address_port",
    "metric_attributes",
    "Exchange",
    "resolve_options",
    "suppressed_context",
    "CLIENT_DISCONNECTED",
    "fault",
]

DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
CLIENT_DISCONNECTED = "ClientDisconnected"
# Semantic-conventions advisory boundaries for http.server.request.duration (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Methods the conventions know; anything else is reported as "_OTHER" so a client cannot blow
# up span names and metric cardinality with made-up verbs.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 header field name
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class MiddlewareOptions:
    """Resolved middleware options (see :func:`resolve_options`)."""

    request_id_header: str
    excluded: re.Pattern[str] | None
    capture_bodies: bool
    max_body_bytes: int

    @property
    def asgi_header(self) -> bytes:
        """The request-ID header as ASGI spells it: lower-case latin-1 bytes."""
        return self.request_id_header.lower().encode("latin-1")

    @property
    def wsgi_key(self) -> str:
        """The request-ID header as a WSGI environ key (``HTTP_X_REQUEST_ID``)."""
        return "HTTP_" + self.request_id_header.upper().replace("-", "_")

    def is_excluded(self, path: str) -> bool:
        """Whether ``path`` matches one of the excluded-URL patterns (``re.search``)."""
        return self.excluded is not None and self.excluded.search(path) is not None


def _env_first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            return name, value  # type: ignore[return-value]
    return None


def _compile_excluded(name: str, raw: str | Iterable[str] | None) -> re.Pattern[str] | None:
    if raw is None:
        return None
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    patterns = [p.strip() for p in parts if p and p.strip()]
    if not patterns:
        return None
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ConfigError(
                f"{name}: {p!r} is not a valid regular expression ({e}); "
                "give comma-separated patterns such as '/healthz,/metrics$'"
            ) from None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def resolve_options(
    framework: str,
    *,
    request_id_header: str | None = None,
    excluded_urls: str | Iterable[str] | None = None,
    capture_bodies: bool | None = None,
    max_body_bytes: int | None = None,
    env: Mapping[str, str] | None = None,
) -> MiddlewareOptions:
    """Keyword argument beats environment beats default, for each middleware option.

    * ``request_id_header``: ``INFERSIGHT_REQUEST_ID_HEADER``, default ``X-Request-ID``.
    * ``excluded_urls``: comma-separated regular expressions searched in the request path;
      ``INFERSIGHT_EXCLUDED_URLS``, then ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS`` (framework
      ``fastapi`` or ``flask``), then ``OTEL_PYTHON_EXCLUDED_URLS``.
    * ``capture_bodies``: ``INFERSIGHT_CAPTURE_BODIES``, default off.
    * ``max_body_bytes``: ``INFERSIGHT_MAX_BODY_BYTES``, default 65536.

    >>> resolve_options("flask", env={"OTEL_PYTHON_EXCLUDED_URLS": "health"}).is_excluded("/health")
    True
    """
    env = os.environ if env is None else env
    header = request_id_header
    header_name = "request_id_header"
    if header is None:
        found = _env_first(env, "INFERSIGHT_REQUEST_ID_HEADER")
        header_name, header = found if found else (header_name, DEFAULT_REQUEST_ID_HEADER)
    if not isinstance(header, str) or not _TOKEN.match(header):
        raise ConfigError(f"{header_name}={header!r} is not an HTTP header name: use e.g. 'X-Request-ID'")

    excluded_name = "excluded_urls"
    if excluded_urls is None:
        found = _env_first(
            env,
            "INFERSIGHT_EXCLUDED_URLS",
            f"OTEL_PYTHON_{framework.upper()}_EXCLUDED_URLS",
            "OTEL_PYTHON_EXCLUDED_URLS",
        )
        if found:
            excluded_name, excluded_urls = found
    excluded = _compile_excluded(excluded_name, excluded_urls)

    if capture_bodies is None:
        raw = env.get("INFERSIGHT_CAPTURE_BODIES", "")
        capture_bodies = raw.strip().lower() not in _FALSE
    if max_body_bytes is None:
        raw_max = env.get("INFERSIGHT_MAX_BODY_BYTES") or str(DEFAULT_MAX_BODY_BYTES)
        try:
            max_body_bytes = int(raw_max)
        except ValueError:
            raise ConfigError(f"INFERSIGHT_MAX_BODY_BYTES={raw_max!r} is not a whole number: use e.g. 65536") from None
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes={max_body_bytes!r} must be at least 1")
    return MiddlewareOptions(header, excluded, bool(capture_bodies), int(max_body_bytes))


def fault(reason: str) -> None:
    """Count and log-once a middleware fault (``ml.telemetry.dropped{ml.telemetry.reason}``)."""
    try:
        from infersight._state import get_runtime

        get_runtime().fault("http_" + reason)
    except Exception:  # noqa: BLE001 - fault reporting itself must never raise
        pass


def suppressed_context() -> Any:
    """A context under which nothing records: for excluded paths, so not even child spans
    (``@monitor``, client instrumentations) appear. A non-sampled parent makes parent-based
    samplers drop children; the suppression key makes OTel instrumentations skip."""
    ctx = otel_context.set_value("suppress_instrumentation", True)
    parent = NonRecordingSpan(
        SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
    return trace.set_span_in_context(parent, ctx)


def normalize_method(method: str) -> str:
    """The method as the conventions want it on spans and metrics: known verbs, else ``_OTHER``.

    >>> normalize_method("GET"), normalize_method("BREW")
    ('GET', '_OTHER')
    """
    return method if method in _KNOWN_METHODS else "_OTHER"


def split_host(host: str | None, default_port: int | None) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` from a Host header (IPv6 literals included).

    >>> split_host("api.local:8080", None), split_host("[::1]:9", None), split_host("x", 443)
    (('api.local', 8080), ('::1', 9), ('x', 443))
    """
    if not host:
        return None, default_port
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            rest = host[end + 1 :]
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
            return host[1:end], port
    name, sep, port_text = host.rpartition(":")
    if sep and port_text.isdigit() and name:
        return name, int(port_text)
    return host, default_port


class RequestInfo:
    """What the protocol adapter read from the request, in protocol-neutral form.

    A plain slotted class built positionally: one is made per request, and a dataclass with
    keyword arguments costs a microsecond more. ``carrier`` is ``None`` when the request carries
    none of the propagator's headers (see :class:`Propagation`): extraction is then skipped; it
    is also ``None`` when ``remote`` holds the caller's span read from a plain ``traceparent``."""

    __slots__ = (
        "method",
        "scheme",
        "path",
        "server_address",
        "server_port",
        "client",
        "user_agent",
        "protocol_version",
        "incoming_id",
        "carrier",
        "getter",
        "remote",
    )

    def __init__(
        self,
        method: str,
        scheme: str,
        path: str,
        server_address: str | None,
        server_port: int | None,
        client: str | None,
        user_agent: str | None,
        protocol_version: str | None,
        incoming_id: str | None,
        carrier: Any = None,
        getter: Getter[Any] | None = None,
        remote: SpanContext | None = None,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.path = path
        self.server_address = server_address
        self.server_port = server_port
        self.client = client
        self.user_agent = user_agent
        self.protocol_version = protocol_version
        self.incoming_id = incoming_id
        self.carrier = carrier
        self.getter = getter
        self.remote = remote  # the caller's span, already read by w3c_parent (carrier is then None)


_CACHE_LIMIT = 256  # entries per small per-process cache below; past it, compute without caching
_hosts: dict[Any, tuple[str | None, int | None]] = {}


def server_address_port(host: Any, default_port: int | None) -> tuple[str | None, int | None]:
    """:func:`split_host` remembered per (Host header, default port): a server sees a handful of
    Host values, and parsing one each request is measurable. ``host`` may be ASGI ``bytes``.
    Bounded, since the header is the client's to choose.

    >>> server_address_port(b"api.local:8080", 80)
    ('api.local', 8080)
    """
    key = (host, default_port)
    hit = _hosts.get(key)
    if hit is None:
        text = host.decode("latin-1") if isinstance(host, bytes) else host
        hit = split_host(text, default_port)
        if len(_hosts) < _CACHE_LIMIT:
            _hosts[key] = hit
    return hit


class Propagation:
    """The global propagator and the header names it reads, recomputed only when the global
    propagator is replaced: a composite propagator builds its ``fields`` set on every access.

    Adapters use the names to notice, while scanning headers they scan anyway, whether a request
    carries trace context at all; most requests to a model server start a trace, and extracting
    from a request without the headers costs microseconds to find nothing. ``w3c`` says the
    propagator is OTel's default (W3C trace context, then W3C baggage): a request whose only
    propagation header is a plain ``traceparent`` is then read by :func:`w3c_parent`."""

    __slots__ = ("_propagator", "names", "w3c")

    def __init__(self) -> None:
        self._propagator: Any = None
        self.names: frozenset[str] = frozenset()
        self.w3c = False

    def current(self) -> Any:
        propagator = propagate.get_global_textmap()
        if propagator is not self._propagator:
            self.names = frozenset(n.lower() for n in propagator.fields)
            self.w3c = _is_default_w3c(propagator)
            self._propagator = propagator
        return propagator


def _is_default_w3c(propagator: Any) -> bool:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if type(propagator) is TraceContextTextMapPropagator:
        return True
    inner = getattr(propagator, "_propagators", None)
    return (
        type(propagator) is CompositePropagator
        and inner is not None
        and [type(p) for p in inner]
        in ([TraceContextTextMapPropagator, W3CBaggagePropagator], [TraceContextTextMapPropagator])
    )


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")


def w3c_parent(traceparent: str) -> SpanContext | None:
    """The caller's span context from a canonical version-00 ``traceparent``, the same one the
    W3C propagator reads from it; ``None`` for any other form (the propagator then decides:
    whitespace, other versions, zero IDs, malformed values).

    >>> ctx = w3c_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    >>> hex(ctx.span_id), ctx.is_remote, ctx.trace_flags.sampled
    ('0xb7ad6b7169203331', True, True)
    >>> w3c_parent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01") is None
    True
    """
    m = _TRACEPARENT.match(traceparent)
    if m is None:
        return None
    trace_id, span_id = int(m.group(1), 16), int(m.group(2), 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, True, TraceFlags(int(m.group(3), 16)), None)


PROPAGATION = Propagation()
_DICT_GETTER: Getter[Any] = DefaultGetter()
_histograms: dict[int, tuple[Any, Any, Any]] = {}
_metric_attrs: dict[tuple[Any, ...], dict[str, Any]] = {}
SCOPE = "infersight.integrations"
_SERVER = SpanKind.SERVER
_perf_counter = time.perf_counter
_time_ns = time.time_ns
_new_request_id = rc.new_request_id
_valid_request_id = rc.is_valid_request_id
_request_id_var = rc._request_id  # noqa: SLF001 - same project


class _SdkRecorder:
    """An SDK histogram behind the fast histogram's ``record`` signature."""

    __slots__ = ("hist",)

    def __init__(self, hist: Any) -> None:
        self.hist = hist

    def record(self, value: float, key: Any, attributes: dict[str, Any], span_context: Any) -> None:
        self.hist.record(value, attributes)


def duration_histogram(rt: Any) -> Any:
    """The stable ``http.server.request.duration`` histogram of runtime ``rt``: infersight's
    fast in-process histogram when its own reader exports deltas, else an instrument of the
    meter provider in use (a reconfigured runtime with another provider gets its own).

    It lives in its own instrumentation scope, ``infersight.integrations``: the HTTP layer is a
    separate instrumentation from ``@monitor``. Either way it is recorded as
    ``record(seconds, key, attributes, span_context)``."""
    hit = _histograms.get(id(rt))
    if hit is not None and hit[0] is rt and hit[1] is rt.meter_provider:
        return hit[2]
    recorder = rt.delta_histogram(
        SCOPE, "http.server.request.duration", "s", "Duration of HTTP server requests.", DURATION_BUCKETS
    )
    if recorder is None:
        meter = rt.meter_provider.get_meter(SCOPE, "0.1.0")
        recorder = _SdkRecorder(
            meter.create_histogram(
                "http.server.request.duration",
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            )
        )
    _histograms[id(rt)] = (rt, rt.meter_provider, recorder)
    return recorder


def metric_attributes(key: tuple[Any, ...]) -> dict[str, Any]:
    """The duration metric's attributes for ``key`` = (method, scheme, status, route,
    error type), one shared dict per combination (routes are templates and status codes few, so
    there are few; bounded all the same). The recorders copy the dict when they keep it, so
    sharing it is safe; never mutate the result.

    >>> metric_attributes(("GET", "http", 200, "/items/{id}", None))["http.route"]
    '/items/{id}'
    """
    attrs = _metric_attrs.get(key)
    if attrs is None:
        method, scheme, status, route, error_type = key
        attrs = {"http.request.method": method, "url.scheme": scheme}
        if status is not None:
            attrs["http.response.status_code"] = status
        if route:
            attrs["http.route"] = route
        if error_type is not None:
            attrs["error.type"] = error_type
        if len(_metric_attrs) < _CACHE_LIMIT:
            _metric_attrs[key] = attrs
    return attrs


_connection_attrs: dict[tuple[Any, ...], dict[str, Any]] = {}


def _connection_attributes(req: RequestInfo) -> dict[str, Any]:
    """The server span's attributes that come from the connection, not the request line:
    scheme, server address and port, client address, user agent, protocol version (those
    present). One shared dict per combination (a server sees few; bounded): never mutate it."""
    key = (req.scheme, req.server_address, req.server_port, req.client, req.user_agent, req.protocol_version)
    attrs = _connection_attrs.get(key)
    if attrs is None:
        attrs = {"url.scheme": req.scheme}
        if req.server_address:
            attrs["server.address"] = req.server_address
        if req.server_port:
            attrs["server.port"] = req.server_port
        if req.client:
            attrs["client.address"] = req.client
        if req.user_agent:
            attrs["user_agent.original"] = req.user_agent
        if req.protocol_version:
            attrs["network.protocol.version"] = req.protocol_version
        if len(_connection_attrs) < _CACHE_LIMIT:
            _connection_attrs[key] = attrs
    return attrs


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
        if method not in _KNOWN_METHODS:
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
        attrs = _connection_attributes(req).copy()
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
        self.req_body, self.req_truncated = _tee(self.req_body, self.req_truncated, chunk, self.opts.max_body_bytes)

    def tee_response(self, chunk: bytes) -> None:
        self.resp_body, self.resp_truncated = _tee(self.resp_body, self.resp_truncated, chunk, self.opts.max_body_bytes)

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
            self._log_bodies(status)
        if not owned:
            return  # the owner of the span records its own HTTP metrics and ends it
        span.end(self.end_ns)
        key = (self.method, self.scheme, status, route, error_type)
        duration_histogram(self.rt).record(duration, key, metric_attributes(key), span.get_span_context())

    def _log_bodies(self, status: int | None) -> None:
        from infersight._state import log_pipeline

        fields: dict[str, Any] = {
            "ml.request.id": self.request_id,
            "http.request.method": self.method,
        }
        s = self.rt.settings
        fields["ml.model.name"] = s.model or "unknown"
        fields["ml.model.version"] = s.version or "unknown"
        if self.route:
            fields["http.route"] = self.route
        if status is not None:
            fields["http.response.status_code"] = status
        truncated = []
        for key, body, cut, part in (
            ("ml.inputs", self.req_body, self.req_truncated, "request"),
            ("ml.outputs", self.resp_body, self.resp_truncated, "response"),
        ):
            if body is None:
                continue
            if cut:
                truncated.append(part)
                fields[key] = None
                continue
            try:
                fields[key] = json.loads(body)
            except ValueError:
                fields[key] = None
                fields[f"ml.http.{part}_body_invalid"] = True
        if truncated:
            fields["ml.http.body_truncated"] = ",".join(truncated)
        log_pipeline().event("ml.http.exchange", fields)


def _tee(buf: bytearray | None, truncated: bool, chunk: bytes, limit: int) -> tuple[bytearray, bool]:
    """Keep a copy of at most ``limit`` bytes; past it, drop the copy and remember why."""
    if buf is None:
        buf = bytearray()
    if truncated or not chunk:
        return buf, truncated
    if len(buf) + len(chunk) > limit:
        buf.clear()
        return buf, True
    buf += chunk
    return buf, False


def is_json(content_type: str | None) -> bool:
    """``application/json`` and ``+json`` media types (parameters ignored).

    >>> is_json("application/json; charset=utf-8"), is_json("application/problem+json"), is_json("text/plain")
    (True, True, False)
    """
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
