"""The OTel SDK's own exponential histogram of some values, to compare sketches with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View


def otel_point(values: Iterable[float], max_size: int = 160) -> Any:
    """The data point the OTel SDK exports after recording ``values`` one by one."""
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation(max_size=max_size))],
    )
    hist = provider.get_meter("test").create_histogram("h")
    for v in values:
        hist.record(float(v))
    data = reader.get_metrics_data()
    provider.shutdown()
    return data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
