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
stopping / store failed   503 + Retry-After      UNAVAILABLE
========================  =====================  ================================

gRPC requests are taken as raw bytes (no deserializer): the same bytes feed the decoder and the
retry digest, and a garbage body gets our INVALID_ARGUMENT message instead of gRPC's own.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

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

from infersight.processor.ingest import Ingestor, Outcome, QueueFull, ShuttingDown, request_digest
from infersight.processor.otlp_decode import (
    RequestError, decode_logs, decode_metrics, decode_metrics_light, decode_traces, parse_request)
from infersight.processor.selfmetrics import Registry
from infersight.processor.windows import screen

__all__ = ["Receiver", "RetryLater", "Unauthorized", "make_http_app", "make_grpc_server", "GRPC_SERVICES"]

log = logging.getLogger("infersight.processor")

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "metrics": lambda msg: decode_metrics(msg, columnar=True), "traces": decode_traces, "logs": decode_logs}
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


@dataclass
class Receiver:
    """Decode → screen → queue → wait for the commit; shared by both transports."""

    ingestor: Ingestor
    registry: Registry
    token: str | None = None
    ack_timeout: float = 30.0

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
                return screen(signal, light)
        msg = parse_request(signal, body, content_type)
        try:
            return screen(signal, _DECODERS[signal](msg))
        except RequestError:
            raise
        except Exception as exc:  # a decoder bug met by odd input: answer it, log it, keep serving
            log.exception("could not decode a %s request", signal)
            raise RequestError(f"could not decode the request ({type(exc).__name__}: {exc})") from exc

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


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or :class:`BodyTooLarge`. An oversized body is drained (up to a cap) so the
    client reads our 413 instead of a reset connection."""
    declared = request.headers.get("content-length")
    parts: list[bytes] = []
    size = 0
    too_big = declared is not None and declared.isdigit() and int(declared) > limit
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_big = True
        if too_big:
            parts.clear()
            if size > 8 * limit + 2**28:
                break
            continue
        parts.append(chunk)
    if too_big:
        raise BodyTooLarge(f"body of {declared or size} bytes is larger than the limit of {limit} bytes")
    return b"".join(parts)


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise BodyTooLarge(f"gzip body inflates beyond the limit of {limit} bytes")
        out += d.flush()
        if not d.eof:
            raise RequestError("gzip body is truncated")
    except zlib.error as exc:
        raise RequestError(f"body is not valid gzip: {exc}") from None
    return out


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
            return _error(
                415, f"content type {ctype or '(none)'!r} is not supported; send {PROTOBUF} or {JSON}", JSON
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            receiver.count(signal, "http", "invalid")
            return _error(415, f"content encoding {encoding!r} is not supported; send gzip or none", reply_type)
        try:
            body = await _read_body(request, max_body_bytes)
            if encoding == "gzip":
                body = _gunzip(body, max_body_bytes)
            decoded = await run_in_threadpool(receiver.decode, signal, body, ctype)
            future = receiver.ingestor.submit(signal, decoded, request_digest(signal, body))
        except BodyTooLarge as exc:
            receiver.count(signal, "http", "too_large")
            return _error(413, str(exc), reply_type)
        except RequestError as exc:
            receiver.count(signal, "http", "invalid")
            return _error(400, f"{signal} request is invalid: {exc}", reply_type)
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
        exc = wrapped.exception()
        if exc is not None:
            receiver.count(signal, "http", "unavailable")
            return _error(503, f"the store failed: {exc}; retry", reply_type, retry_after)
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
        try:
            decoded = receiver.decode(signal, request, PROTOBUF)
            future = receiver.ingestor.submit(signal, decoded, request_digest(signal, request))
            outcome = future.result(receiver.ack_timeout)
        except RequestError as exc:
            receiver.count(signal, "grpc", "invalid")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{signal} request is invalid: {exc}")
        except QueueFull as exc:
            receiver.count(signal, "grpc", "queue_full")
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after))
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; retry later")
        except ShuttingDown as exc:
            receiver.count(signal, "grpc", "unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception as exc:  # timeout or a store failure: not stored, retryable
            receiver.count(signal, "grpc", "unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, f"not stored ({type(exc).__name__}: {exc}); retry")
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
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
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
