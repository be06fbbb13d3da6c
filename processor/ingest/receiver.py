"""OTLP listeners: gRPC (Trace, Metrics and Logs services) and HTTP (``/v1/traces``,
``/v1/metrics``, ``/v1/logs``; protobuf or JSON; gzip).

Both transports share :class:`Receiver`, which checks the token, decodes, screens and queues a
request, and waits for its commit. Answers follow the OTLP specification:

========================  =====================  ================================
what happened             HTTP                   gRPC
========================  =====================  ================================
stored (some rejected)    200 + partial_success  OK + partial_success
unreadable body           400 (Status message)   INVALID_ARGUMENT
no / wrong token          401                    UNAUTHENTICATED
body too large            413                    RESOURCE_EXHAUSTED (by gRPC)
unknown content type      415                    -
queue full                429 + Retry-After      RESOURCE_EXHAUSTED + RetryInfo
bodies in flight too big  429 + Retry-After      RESOURCE_EXHAUSTED + RetryInfo
stopping / store failed   503 + Retry-After      UNAVAILABLE
========================  =====================  ================================

Memory is bounded before decoding, not after: a gzip body is inflated member by member in
chunks and stops at ``max_body`` (413), and every body byte a request holds (as received, then
inflated, until its commit is answered) is claimed from one :class:`InflightBudget` shared by
both transports; a request that would take it past ``max_inflight`` is turned away at once as
retryable (a request alone may be as large as ``max_body``, so none is refused forever). A few
bytes of gzip can inflate to ``max_body`` and decode to ten times that in Python objects, so
without the budget, concurrent small requests could claim gigabytes.

gRPC requests are taken as raw bytes (no deserializer): the same bytes feed the decoder and the
retry digest, and a garbage body gets our INVALID_ARGUMENT message instead of gRPC's own.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infersight.processor.ingest.decode import (
    decode_logs,
    decode_metrics,
    decode_metrics_light,
    decode_traces,
    parse_request,
)
from infersight.processor.ingest.limits import LimitSettings, SeriesLimiter
from infersight.processor.ingest.points import RequestError
from infersight.processor.ingest.screen import screen
from infersight.processor.ingest.writer import Ingestor, Outcome, QueueFull, ShuttingDown, request_digest
from infersight.processor.selfmetrics import Registry

__all__ = [
    "InflightBudget",
    "OverBudget",
    "Receiver",
    "RetryLater",
    "Unauthorized",
    "make_http_app",
    "make_grpc_server",
    "GRPC_SERVICES",
]

log = logging.getLogger("infersight.processor")

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "metrics": lambda msg: decode_metrics(msg, columnar=True),
    "traces": decode_traces,
    "logs": decode_logs,
}
_RESPONSES: dict[str, Any] = {
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}
GRPC_SERVICES = {
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
PROTOBUF, JSON = "application/x-protobuf", "application/json"


class Unauthorized(PermissionError):
    pass


class RetryLater(RuntimeError):
    """The request was not stored; the client should retry (the reason is in the message)."""


class BodyTooLarge(ValueError):
    pass


class OverBudget(RuntimeError):
    """Taking more body bytes would put the requests in flight over ``max_inflight``."""


class InflightBudget:
    """Body bytes held by requests in flight (received, inflated, decoded, waiting for their
    commit), bounded by ``limit`` across all of them. Thread-safe; never blocks: a request that
    does not fit is answered as retryable instead of waiting with its body in memory.

    Example:
        >>> budget = InflightBudget(100)
        >>> a, b = budget.claim(), budget.claim()
        >>> a.take(80); b.take(30)
        Traceback (most recent call last):
        ...
        infersight.processor.ingest.receiver.OverBudget: 80 body bytes in flight; 30 more would pass the limit of 100
        >>> a.release(); b.take(30); budget.used
        30
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def claim(self) -> Claim:
        """A request's share, empty until it takes bytes."""
        return Claim(self)


class Claim:
    """The bytes one request holds of an :class:`InflightBudget`."""

    __slots__ = ("budget", "held")

    def __init__(self, budget: InflightBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, n: int) -> None:
        """Hold ``n`` more bytes, or raise :class:`OverBudget`. A request holding everything in
        flight (alone) may go over the limit: ``max_body`` bounds it."""
        budget = self.budget
        with budget._lock:  # noqa: SLF001 - the budget's own lock
            if budget.used + n > budget.limit and budget.used != self.held:
                raise OverBudget(f"{budget.used} body bytes in flight; {n} more would pass the limit of {budget.limit}")
            budget.used += n
            self.held += n

    def give_back(self, n: int) -> None:
        """Stop holding ``n`` bytes (a buffer the request let go of)."""
        n = min(n, self.held)
        with self.budget._lock:  # noqa: SLF001
            self.budget.used -= n
            self.held -= n

    def release(self) -> None:
        """Stop holding anything (the request is answered)."""
        self.give_back(self.held)


@dataclass
class Receiver:
    """Decode → screen (and limit) → queue → wait for the commit; shared by both transports.

    The series-cardinality limits (``limits``) are seeded from the ingestor's store."""

    ingestor: Ingestor
    registry: Registry
    token: str | None = None
    ack_timeout: float = 30.0
    max_inflight_bytes: int = 64 * 2**20
    limits: LimitSettings = field(default_factory=LimitSettings)

    def __post_init__(self) -> None:
        self.budget = InflightBudget(self.max_inflight_bytes)
        self.registry.gauge("infersight_processor_inflight_bytes", lambda: self.budget.used)
        self.limiter = SeriesLimiter(self.limits, self.ingestor.storage, self.registry)

    def authorize(self, header: str | None) -> None:
        if self.token is None:
            return
        expected = f"Bearer {self.token}".encode()
        if header is None or not hmac.compare_digest(header.strip().encode(), expected):
            raise Unauthorized("missing or wrong bearer token (send 'authorization: Bearer <token>')")

    def decode(self, signal: str, body: bytes, content_type: str) -> Any:
        if signal == "metrics" and content_type == PROTOBUF:
            try:
                light = decode_metrics_light(body)
            except Exception:  # the full decoder below answers (and logs) what this one met
                light = None
            if light is not None:
                return self._screen(signal, light)
        msg = parse_request(signal, body, content_type)
        try:
            return self._screen(signal, _DECODERS[signal](msg))
        except RequestError:
            raise
        except Exception as exc:  # a decoder bug met by odd input: answer it, log it, keep serving
            log.exception("could not decode a %s request", signal)
            raise RequestError(f"could not decode the request ({type(exc).__name__}: {exc})") from exc

    def _screen(self, signal: str, decoded: Any) -> Any:
        screened = screen(signal, decoded, self.limiter)
        self.limiter.flush()
        return screened

    def response(self, signal: str, outcome: Outcome) -> Any:
        cls, field = _RESPONSES[signal]
        resp = cls()
        if outcome.rejected:
            setattr(resp.partial_success, field, outcome.rejected)
            resp.partial_success.error_message = outcome.error_message
        return resp

    def count(self, signal: str, transport: str, outcome: str) -> None:
        self.registry.inc("infersight_processor_requests_total", signal=signal, transport=transport, outcome=outcome)


# -- HTTP -----------------------------------------------------------------------------------


def _status_body(code: int, message: str, content_type: str) -> tuple[bytes, str]:
    status = status_pb2.Status(code=code, message=message)
    if content_type == PROTOBUF:
        return status.SerializeToString(), PROTOBUF
    from google.protobuf import json_format

    return json_format.MessageToJson(status, indent=None).encode(), JSON


_GRPC_CODE_FOR_HTTP = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 503: 14}


def _error(status: int, message: str, content_type: str, retry_after: int | None = None) -> Response:
    body, ctype = _status_body(_GRPC_CODE_FOR_HTTP.get(status, 2), message, content_type)
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(body, status_code=status, media_type=ctype, headers=headers)


async def _read_body(request: Request, limit: int, claim: Claim) -> bytes:
    """The body, each chunk claimed as it arrives; or :class:`BodyTooLarge` /
    :class:`OverBudget`. An oversized or refused body is drained (up to a cap, holding nothing)
    so the client reads our answer instead of a reset connection."""
    declared = request.headers.get("content-length")
    parts: list[bytes] = []
    size = 0
    too_big = declared is not None and declared.isdigit() and int(declared) > limit
    refused: OverBudget | None = None
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_big = True
        if not too_big and refused is None:
            try:
                claim.take(len(chunk))
            except OverBudget as exc:
                refused = exc
        if too_big or refused is not None:
            parts.clear()
            if size > 8 * limit + 2**28:
                break
            continue
        parts.append(chunk)
    if too_big:
        raise BodyTooLarge(f"body of {declared or size} bytes is larger than the limit of {limit} bytes")
    if refused is not None:
        raise refused
    return b"".join(parts)


_GZIP_MAGIC = b"\x1f\x8b"
_INFLATE_CHUNK = 1 << 18


def _gunzip(body: bytes, limit: int, claim: Claim | None = None) -> bytes:
    """Inflate every member of a gzip body (RFC 1952 allows several, and ``cat a.gz b.gz`` makes
    them), in chunks of at most 256 KiB, each claimed before it is kept; stops as soon as the
    output passes ``limit`` (:class:`BodyTooLarge`). Truncated members and bytes after the last
    member that do not start another are :class:`RequestError`."""
    parts: list[bytes] = []
    size = 0
    data: bytes = body
    members = 0
    try:
        while True:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            members += 1
            while not d.eof:
                chunk = d.decompress(data, _INFLATE_CHUNK)
                data = d.unconsumed_tail
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise BodyTooLarge(f"gzip body inflates beyond the limit of {limit} bytes")
                    if claim is not None:
                        claim.take(len(chunk))
                    parts.append(chunk)
                elif not data and not d.eof:
                    raise RequestError(f"gzip body is truncated (member {members} has no end)")
            data = d.unused_data
            if not data:
                break
            if not data.startswith(_GZIP_MAGIC):
                raise RequestError(f"gzip body has {len(data)} bytes of trailing garbage after member {members}")
    except zlib.error as exc:
        raise RequestError(f"body is not valid gzip (member {members}): {exc}") from None
    return b"".join(parts)


def make_http_app(receiver: Receiver, *, max_body_bytes: int, retry_after: int = 2) -> Starlette:
    """The OTLP/HTTP application (``POST /v1/{traces,metrics,logs}``)."""

    async def export(request: Request) -> Response:
        signal = request.url.path.rsplit("/", 1)[-1]
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = JSON if ctype == JSON else PROTOBUF
        try:
            receiver.authorize(request.headers.get("authorization"))
        except Unauthorized as exc:
            receiver.count(signal, "http", "unauthorized")
            return _error(401, str(exc), reply_type)
        if ctype not in (PROTOBUF, JSON):
            receiver.count(signal, "http", "invalid")
            return _error(415, f"content type {ctype or '(none)'!r} is not supported; send {PROTOBUF} or {JSON}", JSON)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            receiver.count(signal, "http", "invalid")
            return _error(415, f"content encoding {encoding!r} is not supported; send gzip or none", reply_type)
        claim = receiver.budget.claim()
        try:
            return await receive(request, signal, ctype, reply_type, encoding, claim)
        finally:
            claim.release()

    async def receive(
        request: Request, signal: str, ctype: str, reply_type: str, encoding: str, claim: Claim
    ) -> Response:
        try:
            body = await _read_body(request, max_body_bytes, claim)
            if encoding == "gzip":
                received = len(body)
                body = await run_in_threadpool(_gunzip, body, max_body_bytes, claim)
                claim.give_back(received)  # the gzip bytes are gone
            decoded = await run_in_threadpool(receiver.decode, signal, body, ctype)
            future = receiver.ingestor.submit(signal, decoded, request_digest(signal, body))
            del body
        except BodyTooLarge as exc:
            receiver.count(signal, "http", "too_large")
            return _error(413, str(exc), reply_type)
        except RequestError as exc:
            receiver.count(signal, "http", "invalid")
            return _error(400, f"{signal} request is invalid: {exc}", reply_type)
        except OverBudget as exc:
            receiver.count(signal, "http", "busy")
            return _error(429, f"too much request data in flight ({exc}); retry later", reply_type, retry_after)
        except QueueFull as exc:
            receiver.count(signal, "http", "queue_full")
            return _error(429, f"{exc}; retry later", reply_type, retry_after)
        except ShuttingDown as exc:
            receiver.count(signal, "http", "unavailable")
            return _error(503, str(exc), reply_type, retry_after)
        wrapped = asyncio.wrap_future(future)
        done, _ = await asyncio.wait({wrapped}, timeout=receiver.ack_timeout)
        if not done:
            receiver.count(signal, "http", "unavailable")
            return _error(503, "the store did not confirm the write in time; retry", reply_type, retry_after)
        failure = wrapped.exception()
        if failure is not None:
            receiver.count(signal, "http", "unavailable")
            return _error(503, f"the store failed: {failure}; retry", reply_type, retry_after)
        outcome = wrapped.result()
        receiver.count(signal, "http", "partial" if outcome.rejected else "ok")
        resp = receiver.response(signal, outcome)
        if reply_type == JSON:
            from google.protobuf import json_format

            return Response(json_format.MessageToJson(resp, indent=None).encode(), media_type=JSON)
        return Response(resp.SerializeToString(), media_type=PROTOBUF)

    async def wrong_method(request: Request) -> Response:
        return _error(405, "OTLP/HTTP takes POST", JSON)

    routes = [Route(f"/v1/{s}", export, methods=["POST"]) for s in ("traces", "metrics", "logs")]
    routes += [Route(f"/v1/{s}", wrong_method, methods=["GET", "PUT", "DELETE"]) for s in ("traces", "metrics", "logs")]
    return Starlette(routes=routes)


# -- gRPC -----------------------------------------------------------------------------------


def _grpc_handler(receiver: Receiver, signal: str, retry_after: int) -> Callable[[bytes, Any], bytes]:
    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        try:
            receiver.authorize(metadata.get("authorization"))
        except Unauthorized as exc:
            receiver.count(signal, "grpc", "unauthorized")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        claim = receiver.budget.claim()
        try:
            # gRPC has read (and inflated, within max_receive_message_length) the message already;
            # the claim bounds what decoding it and waiting for its commit hold.
            claim.take(len(request))
            decoded = receiver.decode(signal, request, PROTOBUF)
            future = receiver.ingestor.submit(signal, decoded, request_digest(signal, request))
            outcome = future.result(receiver.ack_timeout)
        except RequestError as exc:
            receiver.count(signal, "grpc", "invalid")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{signal} request is invalid: {exc}")
        except (QueueFull, OverBudget) as exc:
            busy = isinstance(exc, OverBudget)
            receiver.count(signal, "grpc", "busy" if busy else "queue_full")
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after))
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            message = f"too much request data in flight ({exc})" if busy else str(exc)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{message}; retry later")
        except ShuttingDown as exc:
            receiver.count(signal, "grpc", "unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception as exc:  # timeout or a store failure: not stored, retryable
            receiver.count(signal, "grpc", "unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, f"not stored ({type(exc).__name__}: {exc}); retry")
        finally:
            claim.release()
        receiver.count(signal, "grpc", "partial" if outcome.rejected else "ok")
        return bytes(receiver.response(signal, outcome).SerializeToString())

    return export


def make_grpc_server(
    receiver: Receiver,
    address: str,
    *,
    max_body_bytes: int,
    retry_after: int = 2,
    tls: tuple[bytes, bytes] | None = None,
    workers: int = 16,
) -> tuple[grpc.Server, int]:
    """A started-ready (not started) gRPC server with the three OTLP services on ``address``;
    returns it and the bound port (``address`` may use port 0). ``tls`` is (key PEM, cert PEM)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        options=[
            # Checked by gRPC on the inflated message too: a gzip bomb stops at the limit.
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
        # Calls beyond the workers would wait with their messages in memory: turned away instead
        # (RESOURCE_EXHAUSTED, which OTLP exporters retry).
        maximum_concurrent_rpcs=workers,
    )
    handlers = []
    for signal, service in GRPC_SERVICES.items():
        method = grpc.unary_unary_rpc_method_handler(_grpc_handler(receiver, signal, retry_after))
        handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
    server.add_generic_rpc_handlers(tuple(handlers))
    if tls is not None:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    return server, port
