"""The OTel OTLP span exporters, taught to send a request infersight has already encoded.

Everything else (endpoints and ``OTEL_EXPORTER_OTLP_*`` variables, TLS, headers, compression,
timeouts, retries with back-off, the exporters' own metrics) stays the OTel exporter's: these
subclasses add one method, ``export_encoded(payload, count)``, which
:class:`infersight._spans.LiteSpanProcessor` uses for infersight's own spans; SDK spans still go
through ``export``.

* gRPC: the payload goes through the exporter's own send-and-retry loop (its
  ``_translate_data`` hook) to a method on the exporter's own channel that sends bytes as they
  are; where the exporter's internals differ (another version), the payload is parsed back into
  the request message instead (in C, about a microsecond per span).
* HTTP: the payload goes to the exporter's HTTP client, which compresses, sends and retries it.
  Where that client is missing (another exporter version), ``export_encoded`` is ``None`` and
  infersight's spans are converted to SDK spans instead: slower, never lost.

Every exporter infersight builds (spans, metrics, logs; gRPC and HTTP) also reports its own
health in one line: the OTel exporters log a warning per retry and an error per failed batch
(on a dead collector, several lines every few seconds, forever); inside an export made by one of
ours, those records are held back and replaced by one line saying the endpoint is unreachable
and that telemetry is dropped and counted in ``ml.telemetry.dropped``, and one more line when it
takes exports again. Exporters the application made itself log as they always did: the filter
only acts on the thread, and for the duration, of an export of ours.

Example:
    >>> exporter = span_exporter("http", endpoint="http://127.0.0.1:4318/v1/traces")
    >>> callable(exporter.export_encoded)
    True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as _GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as _GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as _GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as _HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as _HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["EncodedSpans", "GrpcSpanExporter", "HttpSpanExporter", "span_exporter", "metric_exporter", "log_exporter"]

_log = logging.getLogger("infersight")

# Where the OTel OTLP exporters log their retries and failures (the HTTP exporters hand their
# module's logger to their client).
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
)


class _EndpointHealth:
    """Says once that an endpoint stopped taking exports, and once that it takes them again."""

    def __init__(self) -> None:
        self._down: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, endpoint: str, detail: str) -> None:
        with self._lock:
            if endpoint in self._down:
                return
            self._down.add(endpoint)
        _log.warning(
            "infersight: OTLP endpoint %s is unreachable (%s); telemetry is dropped and counted in "
            "ml.telemetry.dropped until it is back (logged once)",
            endpoint,
            detail,
        )

    def succeeded(self, endpoint: str) -> None:
        if endpoint not in self._down:  # the common case, without the lock
            return
        with self._lock:
            if endpoint not in self._down:
                return
            self._down.discard(endpoint)
        _log.warning("infersight: OTLP endpoint %s is reachable again; exporting resumed", endpoint)


_health = _EndpointHealth()
_inside = threading.local()  # .endpoint: set while this thread runs an export of ours


class _HeldBack(logging.Filter):
    """Drops the OTel exporters' records emitted inside one of our exports (the first warning
    marks the endpoint down at once: the exporter's retries may take its whole timeout)."""

    def filter(self, record: logging.LogRecord) -> bool:
        endpoint = getattr(_inside, "endpoint", None)
        if endpoint is None:
            return True
        if record.levelno >= logging.WARNING:
            detail = str(record.args[0]) if isinstance(record.args, tuple) and record.args else record.getMessage()
            _health.failed(endpoint, _short(detail))
        return False


_HELD_BACK = _HeldBack()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_HELD_BACK)


def _short(detail: str) -> str:
    """The gist of an exporter's error (a requests error repeats the URL and pool twice)."""
    for gist in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if gist in detail:
            return gist.lower()
    return detail[:160]


def _endpoint_key(exporter: Any) -> str:
    """``host:port`` (gRPC) or ``scheme://host:port`` (HTTP: one line for its three paths)."""
    raw = str(getattr(exporter, "_endpoint", "") or "OTLP")
    parts = urlsplit(raw)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else raw


def _reported(exporter: Any, send: Callable[[], Any], failure: Any) -> Any:
    """``send()`` with our exporters' logging held back and the outcome reported as health;
    an exception becomes ``failure`` (a batch processor would log it with a traceback)."""
    endpoint = _endpoint_key(exporter)
    outer = getattr(_inside, "endpoint", None)
    _inside.endpoint = endpoint
    try:
        result = send()
    except Exception as exc:  # noqa: BLE001 - counted by the caller as a failed export
        _health.failed(endpoint, _short(f"{type(exc).__name__}: {exc}"))
        return failure
    finally:
        _inside.endpoint = outer
    ok = result is True or getattr(result, "name", None) == "SUCCESS"
    if ok:
        _health.succeeded(endpoint)
    else:
        _health.failed(endpoint, "export failed")
    return result


class _Reporting:
    """Mixin for an OTel OTLP exporter: ``export`` goes through :func:`_reported`."""

    reports_health = True
    _failure: Any = None

    # ``*args, **kwargs`` alone: the one override that fits the span, metric and log
    # exporters' ``export``, whose parameters differ.
    def export(self, *args: Any, **kwargs: Any) -> Any:
        return _reported(
            self,
            lambda: super(_Reporting, self).export(*args, **kwargs),  # type: ignore[misc]
            self._failure,
        )


class EncodedSpans:
    """An already encoded ``ExportTraceServiceRequest`` and how many spans it holds."""

    __slots__ = ("payload", "count")

    def __init__(self, payload: bytes, count: int) -> None:
        self.payload = payload
        self.count = count


_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _BytesOrMessage:
    """The exporter's stub, plus a bytes-in method on the same channel for encoded requests."""

    def __init__(self, stub: Any, raw: Any) -> None:
        self.stub = stub
        self.raw = raw

    def Export(self, request: Any, metadata: Any = None, timeout: Any = None) -> Any:  # noqa: N802 - gRPC name
        if isinstance(request, bytes):
            return self.raw(request, metadata=metadata, timeout=timeout)
        return self.stub.Export(request=request, metadata=metadata, timeout=timeout)


class GrpcSpanExporter(_Reporting, _GrpcSpanExporter):
    """``OTLPSpanExporter`` (gRPC) plus ``export_encoded``."""

    _failure = SpanExportResult.FAILURE

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[misc]
        channel = getattr(self, "_channel", None)
        if channel is not None and getattr(self, "_client", None) is not None:
            # request_serializer=None: the request is sent as the bytes it already is.
            raw = channel.unary_unary(
                _EXPORT_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
            )
            self._client = _BytesOrMessage(self._client, raw)  # type: ignore[assignment]

    def _translate_data(self, data: Any) -> Any:
        if isinstance(data, EncodedSpans):
            if isinstance(getattr(self, "_client", None), _BytesOrMessage):
                return data.payload
            return ExportTraceServiceRequest.FromString(data.payload)
        return super()._translate_data(data)

    def _count_data(self, data: Any) -> int:
        if isinstance(data, EncodedSpans):
            return data.count
        return int(super()._count_data(data))

    def export_encoded(self, payload: bytes, count: int) -> bool:
        return bool(
            _reported(
                self,
                lambda: self._export(EncodedSpans(payload, count)) is SpanExportResult.SUCCESS,  # type: ignore[arg-type]
                False,
            )
        )


class HttpSpanExporter(_Reporting, _HttpSpanExporter):
    """``OTLPSpanExporter`` (HTTP/protobuf) plus ``export_encoded`` where its client allows."""

    _failure = SpanExportResult.FAILURE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        client = getattr(self, "_client", None)
        if not callable(getattr(client, "export", None)):
            self.export_encoded = None  # type: ignore[assignment]

    def export_encoded(self, payload: bytes, count: int) -> bool:
        if getattr(self, "_shutdown", False):
            return False
        limit = getattr(self, "_max_request_size", 0) or 0
        if 0 < limit < len(payload):
            _log.warning(
                "infersight: dropping %d spans: %d bytes exceed max_request_size %d", count, len(payload), limit
            )
            return False
        return bool(_reported(self, lambda: bool(getattr(self._client.export(payload), "success", False)), False))


class _GrpcMetrics(_Reporting, _GrpcMetricExporter):
    _failure = MetricExportResult.FAILURE


class _HttpMetrics(_Reporting, _HttpMetricExporter):
    _failure = MetricExportResult.FAILURE


class _GrpcLogs(_Reporting, _GrpcLogExporter):
    _failure = LogRecordExportResult.FAILURE


class _HttpLogs(_Reporting, _HttpLogExporter):
    _failure = LogRecordExportResult.FAILURE


def span_exporter(protocol: str, **kwargs: Any) -> Any:
    """The OTLP span exporter for ``protocol`` (``grpc`` or ``http/protobuf``)."""
    return GrpcSpanExporter(**kwargs) if protocol == "grpc" else HttpSpanExporter(**kwargs)


def metric_exporter(protocol: str, **kwargs: Any) -> Any:
    """The OTLP metric exporter for ``protocol``, reporting its endpoint's health in one line."""
    return _GrpcMetrics(**kwargs) if protocol == "grpc" else _HttpMetrics(**kwargs)


def log_exporter(protocol: str, **kwargs: Any) -> Any:
    """The OTLP log exporter for ``protocol``, reporting its endpoint's health in one line."""
    return _GrpcLogs(**kwargs) if protocol == "grpc" else _HttpLogs(**kwargs)
