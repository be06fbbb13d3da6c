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

Example:
    >>> exporter = span_exporter("http", endpoint="http://127.0.0.1:4318/v1/traces")
    >>> callable(exporter.export_encoded)
    True
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as _GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["EncodedSpans", "GrpcSpanExporter", "HttpSpanExporter", "span_exporter"]

_log = logging.getLogger("infersight")


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


class GrpcSpanExporter(_GrpcSpanExporter):
    """``OTLPSpanExporter`` (gRPC) plus ``export_encoded``."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[misc]
        channel = getattr(self, "_channel", None)
        if channel is not None and getattr(self, "_client", None) is not None:
            # request_serializer=None: the request is sent as the bytes it already is.
            raw = channel.unary_unary(_EXPORT_METHOD, request_serializer=None,
                                      response_deserializer=ExportTraceServiceResponse.FromString)
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
        return self._export(EncodedSpans(payload, count)) is SpanExportResult.SUCCESS  # type: ignore[arg-type]


class HttpSpanExporter(_HttpSpanExporter):
    """``OTLPSpanExporter`` (HTTP/protobuf) plus ``export_encoded`` where its client allows."""

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
            _log.warning("infersight: dropping %d spans: %d bytes exceed max_request_size %d", count, len(payload), limit)
            return False
        result = self._client.export(payload)
        return bool(getattr(result, "success", False))


def span_exporter(protocol: str, **kwargs: Any) -> Any:
    """The OTLP span exporter for ``protocol`` (``grpc`` or ``http/protobuf``)."""
    return GrpcSpanExporter(**kwargs) if protocol == "grpc" else HttpSpanExporter(**kwargs)
