"""The in-process delta histogram behind ``http.server.request.duration``: the same points an
OTel SDK histogram makes from the same measurements, exemplars linked to sampled spans,
bounded series."""

from __future__ import annotations

import random

from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.trace import SpanContext, TraceFlags

from infersight._histogram import DeltaHistogram

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


def test_points_equal_the_sdk_histograms():
    reader = InMemoryMetricReader(preferred_temporality={SdkHistogram: AggregationTemporality.DELTA})
    sdk = (
        MeterProvider(metric_readers=[reader])
        .get_meter("t")
        .create_histogram("d", unit="s", explicit_bucket_boundaries_advisory=list(BOUNDS))
    )
    ours = DeltaHistogram("d", "s", "", BOUNDS)
    rng = random.Random(4)
    for _ in range(5000):
        value = rng.choice([rng.expovariate(20), 0.01, 0.05, 2.0])  # bucket edges included
        attrs = {"http.request.method": rng.choice(["GET", "POST"]), "http.response.status_code": 200}
        sdk.record(value, attrs)
        ours.record(value, tuple(attrs.values()), attrs, None)
    [metric] = [m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    theirs = {p.attributes["http.request.method"]: p for p in metric.data.data_points}
    mine = {p.attributes["http.request.method"]: p for p in ours.drain(0, 1).data.data_points}
    assert theirs.keys() == mine.keys()
    for method, p in mine.items():
        q = theirs[method]
        assert (p.count, list(p.bucket_counts), list(p.explicit_bounds), p.min, p.max) == (
            q.count,
            list(q.bucket_counts),
            list(q.explicit_bounds),
            q.min,
            q.max,
        )
        assert abs(p.sum - q.sum) < 1e-9
    assert ours.drain(1, 2) is None  # a drain hands everything over


def test_exemplars_follow_sampled_spans_only():
    h = DeltaHistogram("d", "s", "", BOUNDS)
    sampled = SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(3, 4, False, TraceFlags(TraceFlags.DEFAULT))
    h.record(0.002, ("a",), {"k": "a"}, sampled)
    h.record(0.003, ("a",), {"k": "a"}, unsampled)  # same bucket, not sampled: keeps the first
    h.record(0.7, ("a",), {"k": "a"}, unsampled)
    [point] = h.drain(0, 1).data.data_points
    [exemplar] = point.exemplars
    assert (exemplar.value, exemplar.trace_id, exemplar.span_id) == (0.002, 1, 2)


def test_series_are_bounded_with_one_overflow_series():
    h = DeltaHistogram("d", "s", "", BOUNDS, max_series=3)
    for i in range(10):
        h.record(0.01, (i,), {"route": f"/r{i}"}, None)
    points = h.drain(0, 1).data.data_points
    assert len(points) == 4
    overflow = [p for p in points if p.attributes.get("otel.metric.overflow")]
    assert len(overflow) == 1 and overflow[0].count == 7
    assert sum(p.count for p in points) == 10
