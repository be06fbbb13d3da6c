"""The OTel OTLP span exporters, taught to send a request infersight has already encoded.

Everything else (endpoints and ``OTEL_EXPORTER_OTLP_*`` variables, TLS, headers, compression,
timeouts, retries with back-off, the exporters' own metrics) stays the OTel exporter's: these
subclasses add one method, ``export_encoded(payload, count)``, which
:class:`infersight._spans.LiteSpanProcessor` uses for infersight's own spans; SDK spans still go
through ``export``.

* gRPC: the payload is parsed back into the request message (in C, a few µs per batch) and
  handed to the exporter's own send-and-retry loop through its ``_translate_data`` hook.
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["EncodedSpans", "GrpcSpanExporter", "HttpSpanExporter", "span_exporter"]

_log = logging.getLogger("infersight")


class EncodedSpans:
    """An already encoded ``ExportTraceServiceRequest`` and how many spans it holds."""

    __slots__ = ("payload", "count")

    def __init__(self, payload: bytes, count: int) -> None:
        self.payload = payload
        self.count = count


class GrpcSpanExporter(_GrpcSpanExporter):
    """``OTLPSpanExporter`` (gRPC) plus ``export_encoded``."""

    def _translate_data(self, data: Any) -> ExportTraceServiceRequest:
        if isinstance(data, EncodedSpans):
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
