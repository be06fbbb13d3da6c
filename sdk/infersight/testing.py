"""Helpers for testing code that uses infersight: in-memory exporters and readers.

Example:
    >>> import infersight
    >>> from infersight.testing import InMemoryTelemetry
    >>> t = InMemoryTelemetry.install(log_output="none")
    >>> @infersight.monitor(model="m")
    ... def predict(row):
    ...     return 1.0
    >>> _ = predict({"x": 2.0})
    >>> t.flush()
    >>> [p.count for p in t.points("ml.feature.value")]
    [1]
"""

from __future__ import annotations

import json
import threading
from typing import Any

from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infersight._outcomes import call_predictions

__all__ = ["InMemoryMetricExporter", "InMemoryTelemetry"]


class InMemoryMetricExporter(MetricExporter):
    """Keeps every exported :class:`MetricsData` (OTel ships a reader, not an exporter)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.batches: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        with self._lock:
            self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass

    def points(self, name: str) -> list[Any]:
        """Every data point of metric ``name`` exported so far."""
        with self._lock:
            batches = list(self.batches)
        return [
            p
            for data in batches
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        ]

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()


class InMemoryTelemetry:
    """infersight configured to export spans, metrics and logs into memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricExporter()
        self.logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # unannotated in the SDK

    @classmethod
    def install(cls, **options: Any) -> InMemoryTelemetry:
        """Configure infersight (``options`` as for ``configure``) with in-memory exporters."""
        from infersight import configure

        t = cls()
        options.setdefault("metric_export_interval", 3600)
        configure(span_exporter=t.spans, metric_exporter=t.metrics, log_exporter=t.logs, **options)
        return t

    def flush(self) -> None:
        from infersight import flush

        flush()

    def points(self, name: str) -> list[Any]:
        return self.metrics.points(name)

    def finished_spans(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def log_records(self) -> list[Any]:
        """The payload and feedback log records (``ml.prediction``, ``ml.feedback``); the
        ``ml.outcomes`` records every call ships are in :meth:`outcomes`."""
        return [r for r in self._all_logs() if r.attributes.get("event.name") != "ml.outcomes"]

    def outcomes(self) -> list[dict[str, Any]]:
        """Every call's outcome shipped so far, one dict per call: ``request_id``, ``time_ns``,
        ``model``, ``version``, ``trace_id``, ``span_id``, ``prediction``, ``rows``, ``truncated``."""
        out: list[dict[str, Any]] = []
        for r in self._all_logs():
            if r.attributes.get("event.name") != "ml.outcomes":
                continue
            body = json.loads(r.body)
            body["prediction"] = call_predictions(body)  # packed float answers as lists
            cols = ("request_id", "time_ns", "trace_id", "span_id", "prediction", "rows", "truncated")
            for values in zip(*(body[c] for c in cols)):
                out.append({"model": body["model"], "version": body["version"], **dict(zip(cols, values))})
        return out

    def _all_logs(self) -> list[Any]:
        return [getattr(r, "log_record", r) for r in self.logs.get_finished_logs()]

    def clear(self) -> None:
        self.spans.clear()
        self.metrics.clear()
        self.logs.clear()
