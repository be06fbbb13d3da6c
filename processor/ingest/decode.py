"""OTLP requests (protobuf or JSON) → decoded points (:mod:`~infersight.processor.ingest.points`).

This is the first stage of the processor's pipeline (OTLP → decoded points → windows → ...):
it knows the wire formats and nothing about storage, so tests (the SDK's too) can decode what
arrived without starting anything:

    >>> from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ...     ExportMetricsServiceRequest)
    >>> decode_metrics_request(ExportMetricsServiceRequest())
    []

Exponential-histogram points become :class:`infersight.stats.sketch.ExpHistogram` (the SDK's own
OTel-exact sketch), so they merge with what the SDK computed without any conversion loss. On the
ingest path, delta exponential-histogram points are decoded as columns instead
(:mod:`~infersight.processor.ingest.columns`, :mod:`~infersight.processor.ingest.light`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from google.protobuf import json_format, unknown_fields
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import ExponentialHistogramDataPoint, Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from infersight.processor.ingest.columns import SketchColumns, bucket_counts, run_totals
from infersight.processor.ingest.light import LightRequest
from infersight.processor.ingest.points import (
    Decoded,
    LogPoint,
    MetricPoint,
    RequestError,
    SpanPoint,
    bucket_extent,
)
from infersight.stats.sketch import DEFAULT_MAX_SIZE, Buckets, ExpHistogram
from infersight.stats.windows import ExplicitHistogram

__all__ = [
    "decode_metrics_request",
    "decode_traces_request",
    "decode_logs_request",
    "decode_metrics",
    "decode_traces",
    "decode_logs",
    "decode_metrics_light",
    "exp_histogram_from_point",
    "parse_request",
    "REQUEST_TYPES",
]

REQUEST_TYPES: dict[str, type[Message]] = {
    "metrics": ExportMetricsServiceRequest,
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
}

# OTLP's AggregationTemporality enum.
_DELTA, _CUMULATIVE = 1, 2
_STATUS_ERROR = 2


_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def parse_request(signal: str, body: bytes, content_type: str = "application/x-protobuf") -> Message:
    """Parse an OTLP/HTTP body for ``signal`` (``metrics``, ``traces``, ``logs``).

    ``content_type`` is ``application/x-protobuf`` or ``application/json`` (OTLP/JSON: ids in
    hex, enums as integers, unknown fields ignored). Raises :class:`RequestError` naming what is
    wrong.

    >>> parse_request("metrics", b'{"resourceMetrics": []}', "application/json")
    <BLANKLINE>
    """
    cls = REQUEST_TYPES[signal]
    msg = cls()
    if content_type == "application/json":
        try:
            doc = json.loads(body)
        except RecursionError:
            raise RequestError("JSON body is nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RequestError(f"JSON body must be an object ({cls.__name__}), not {type(doc).__name__}")
        try:
            _hex_ids_to_base64(doc)
            json_format.ParseDict(doc, msg, ignore_unknown_fields=True, max_recursion_depth=64)
        except RecursionError:
            raise RequestError("JSON body is nested too deeply") from None
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise RequestError(f"JSON body is not an OTLP {cls.__name__}: {exc}") from None
        return msg
    try:
        msg.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise RequestError(f"body is not a protobuf {cls.__name__}: {exc}") from None
    return msg


def _hex_ids_to_base64(doc: Any) -> None:
    """OTLP/JSON writes trace and span ids in hex; protobuf's JSON mapping expects base64.

    Iterative, so a deeply nested document cannot exhaust the Python stack here.
    """
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str) and value:
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        raise RequestError(f"{key} {value[:40]!r} is not hex") from None
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def _as_message(signal: str, data: bytes | Message) -> Message:
    if isinstance(data, Message):
        return data
    return parse_request(signal, bytes(data))


def _any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attrs(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def _attrs(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _has_unknown(msg: Message) -> bool:
    """Unknown fields at the top two levels: the mark of a different message type."""
    if len(unknown_fields.UnknownFieldSet(msg)):
        return True
    for desc, value in msg.ListFields():
        if desc.message_type is None:
            continue
        repeated = desc.is_repeated if hasattr(desc, "is_repeated") else desc.label == desc.LABEL_REPEATED
        items = value if repeated else [value]
        for item in list(items)[:8]:
            if len(unknown_fields.UnknownFieldSet(item)):
                return True
    return False


def _check_shape(msg: Message, out: Decoded, items: int) -> Decoded:
    """A request none of whose items is usable is malformed (400 / INVALID_ARGUMENT, naming
    why) rather than a partial success; so is one that parses only as fields OTLP does not
    define (a different message type)."""
    if out.size:
        return out
    if out.rejected:
        raise RequestError(f"no item in this {type(msg).__name__} is valid: {out.error_message}")
    if items == 0 and _has_unknown(msg):
        raise RequestError(f"body is not a {type(msg).__name__}: it parses only as unknown fields")
    return out


# -- metrics -------------------------------------------------------------------------------


def decode_metrics_request(data: bytes | Message) -> list[MetricPoint]:
    """Metric points in an ``ExportMetricsServiceRequest`` (protobuf bytes or message).

    Invalid points are left out; :func:`decode_metrics` also says how many and why.
    """
    return decode_metrics(_as_message("metrics", data)).points


def decode_metrics(msg: Message, *, columnar: bool = False) -> Decoded:
    """Decode an ``ExportMetricsServiceRequest`` into :class:`MetricPoint` s (one per data point).

    With ``columnar=True`` delta exponential-histogram points go to ``Decoded.columns``
    (:class:`~infersight.processor.ingest.columns.SketchColumns`) instead: the ingest path's fast form.
    """
    out = Decoded()
    items = 0
    for rm in msg.resource_metrics:
        resource = _attrs(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                items += 1
                _decode_one(metric, resource, out, columnar)
    return _check_shape(msg, out, items)


def _decode_one(metric: Any, resource: dict[str, Any], out: Decoded, columnar: bool) -> None:
    kind = metric.WhichOneof("data")
    if not metric.name:
        out.reject("a metric has no name")
    elif kind is None:
        out.reject(f"metric {metric.name!r} has no data (gauge, sum, histogram, ...)")
    elif kind != "summary":  # legacy Prometheus summaries carry nothing mergeable; ignored
        _decode_metric(metric, kind, resource, out, columnar)


def decode_metrics_light(body: bytes) -> Decoded | None:
    """:func:`decode_metrics` (``columnar=True``) of protobuf ``body`` through the lighter view
    of the request (:mod:`infersight.processor.ingest.light`): the same result, with less Python
    work per point. ``None`` when the body needs the full decoder's judgement (unreadable, no
    usable item); the caller then runs :func:`decode_metrics`, which names the problem.
    """
    try:
        msg = LightRequest.FromString(body)
        out = Decoded()
        items = 0
        for rm in msg.resource_metrics:
            resource = _attrs(Resource.FromString(rm.resource).attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    items += 1
                    eh = metric.exponential_histogram
                    if (
                        metric.name
                        and metric.HasField("exponential_histogram")
                        and eh.aggregation_temporality == _DELTA
                    ):
                        slow = _exp_columns(metric.name, resource, eh.data_points, out, light=True)
                        if slow:
                            _histogram_points(
                                metric.name,
                                "exponential_histogram",
                                metric.unit,
                                resource,
                                "delta",
                                [ExponentialHistogramDataPoint.FromString(dp.SerializeToString()) for dp in slow],
                                out,
                            )
                    else:
                        _decode_one(Metric.FromString(metric.SerializeToString()), resource, out, True)
    except (DecodeError, RecursionError, ValueError):
        return None
    return out if out.size else None


def _temporality(value: int, name: str, out: Decoded) -> str | None:
    if value == _DELTA:
        return "delta"
    if value == _CUMULATIVE:
        return "cumulative"
    out.reject(f"metric {name!r}: aggregation temporality is unspecified")
    return None


def _decode_metric(metric: Any, kind: str, resource: dict[str, Any], out: Decoded, columnar: bool = False) -> None:
    name, unit = metric.name, metric.unit
    data = getattr(metric, kind)
    if kind == "gauge":
        for dp in data.data_points:
            out.points.append(
                MetricPoint(
                    name,
                    "gauge",
                    resource,
                    _attrs(dp.attributes),
                    dp.start_time_unix_nano,
                    dp.time_unix_nano,
                    "delta",
                    False,
                    _number(dp),
                    unit=unit,
                )
            )
        return
    temporality = _temporality(data.aggregation_temporality, name, out)
    if temporality is None:
        return
    if kind == "sum":
        for dp in data.data_points:
            value = _number(dp)
            if not math.isfinite(value):
                out.reject(f"metric {name!r}: sum value {value} is not finite")
                continue
            out.points.append(
                MetricPoint(
                    name,
                    "sum",
                    resource,
                    _attrs(dp.attributes),
                    dp.start_time_unix_nano,
                    dp.time_unix_nano,
                    temporality,
                    data.is_monotonic,
                    value,
                    unit=unit,
                )
            )
    elif kind == "exponential_histogram":
        dps: Iterable[Any] = data.data_points
        if columnar and temporality == "delta":
            dps = _exp_columns(name, resource, data.data_points, out)
        _histogram_points(name, "exponential_histogram", unit, resource, temporality, dps, out)
    elif kind == "histogram":
        _histogram_points(name, "histogram", unit, resource, temporality, data.data_points, out)


# Attribute sets recur request after request (the same model, version and feature), so their
# decoded form is kept, keyed by the attributes' own bytes. Bounded: emptied when full.
_ATTR_CACHE: dict[tuple[bytes, ...], dict[str, Any]] = {}
_ATTR_CACHE_MAX = 200_000


def _exp_columns(
    name: str, resource: dict[str, Any], data_points: Sequence[Any], out: Decoded, light: bool = False
) -> list[Any]:
    """Append the points of one exponential-histogram metric to ``out.columns``; return those
    that need the point-by-point path (no sum/min/max sent, non-finite values, odd bytes).

    Per point only scalars and the attributes' and buckets' bytes are read in Python (with
    ``light``, points of :mod:`~infersight.processor.ingest.light`, whose attributes and buckets
    *are* bytes); bucket counts are decoded for the whole metric at once.
    """
    intern: dict[tuple[bytes, ...], int] = {}
    attrs: list[dict[str, Any]] = []
    keys: list[Any] = []
    rows: list[tuple[Any, ...]] = []
    blobs: list[bytes] = []
    fast: list[Any] = []
    slow: list[Any] = []
    cache = _ATTR_CACHE
    if len(cache) > _ATTR_CACHE_MAX:
        cache.clear()
    for dp in data_points:
        # Optional fields read 0.0 when absent: only a 0.0 needs the (slower) presence check.
        total, lo, hi = dp.sum, dp.min, dp.max
        if (
            (not total and not dp.HasField("sum"))
            or (not lo and not dp.HasField("min"))
            or (not hi and not dp.HasField("max"))
        ):
            slow.append(dp)
            continue
        if light:
            key = tuple(dp.attributes[:])  # a slice copies in C: cheaper than iterating
            blobs.append(dp.positive)
            blobs.append(dp.negative)
        else:
            key = tuple([kv.SerializeToString() for kv in dp.attributes])
            blobs.append(dp.positive.SerializeToString())
            blobs.append(dp.negative.SerializeToString())
        ai = intern.get(key)
        if ai is None:
            ai = intern[key] = len(attrs)
            decoded = cache.get(key)
            if decoded is None:
                decoded = cache[key] = _attrs([KeyValue.FromString(b) for b in key]) if light else _attrs(dp.attributes)
            attrs.append(decoded)
            keys.append(key)
        rows.append((ai, dp.start_time_unix_nano, dp.time_unix_nano, dp.scale, dp.count, dp.zero_count, total, lo, hi))
        fast.append(dp)
    if not rows:
        return slow
    buckets = bucket_counts(blobs)
    try:
        columns = list(zip(*rows))
        ints = [np.array(c, np.int64) for c in columns[:6]]
    except OverflowError:  # a value beyond int64: the point-by-point path names it
        buckets = None
    if buckets is None:
        return slow + fast
    floats = [np.array(c, np.float64) for c in columns[6:]]
    attr_index, start, time, scale, count, zero = ints
    offsets, lens, counts = buckets
    poff, noff, plen, nlen = offsets[0::2], offsets[1::2], lens[0::2], lens[1::2]
    cols = SketchColumns(
        name,
        resource,
        attrs,
        keys,
        attr_index,
        start,
        time,
        scale,
        count,
        zero,
        floats[0],
        floats[1],
        floats[2],
        poff,
        plen,
        noff,
        nlen,
        counts,
    )
    finite = np.isfinite(floats[0]) & np.isfinite(floats[1]) & np.isfinite(floats[2])
    bucket_total = run_totals(counts, plen + nlen)
    good = (count == zero + bucket_total) & (scale >= -10) & (scale <= 20) & (zero >= 0) & (count >= 0)
    for i in np.flatnonzero(~good & finite):
        if not -10 <= scale[i] <= 20:
            out.reject(f"metric {name!r}: scale {scale[i]} is outside the OTel range -10..20")
        else:
            out.reject(f"metric {name!r}: count {count[i]} != zero_count {zero[i]} + bucket counts {bucket_total[i]}")
    if (good & finite).any():
        out.columns.append(cols if (good & finite).all() else cols.take(good & finite))
    return slow + [fast[i] for i in np.flatnonzero(~finite)]


def _histogram_points(
    name: str, kind: str, unit: str, resource: dict[str, Any], temporality: str, dps: Iterable[Any], out: Decoded
) -> None:
    """Histogram points one by one (``kind`` ``exponential_histogram`` or ``histogram``)."""
    for dp in dps:
        try:
            value = exp_histogram_from_point(dp) if kind == "exponential_histogram" else _explicit_from_point(dp)
        except ValueError as exc:
            out.reject(f"metric {name!r}: {exc}")
            continue
        p = MetricPoint(
            name,
            kind,
            resource,
            _attrs(dp.attributes),
            dp.start_time_unix_nano,
            dp.time_unix_nano,
            temporality,
            True,
            unit=unit,
        )
        if isinstance(value, ExpHistogram):
            p.sketch = value
        else:
            p.histogram = value
        out.points.append(p)


def _number(dp: Any) -> float:
    which = dp.WhichOneof("value")
    return float(dp.as_int) if which == "as_int" else float(dp.as_double) if which else 0.0


def exp_histogram_from_point(dp: Any) -> ExpHistogram:
    """An OTLP ``ExponentialHistogramDataPoint`` as the SDK's sketch type.

    Producers may leave out ``sum``, ``min`` and ``max`` (they are optional in OTLP); they are
    then estimated from the bucket bounds so that merged windows stay well defined.
    """
    if not -10 <= dp.scale <= 20:
        raise ValueError(f"scale {dp.scale} is outside the OTel range -10..20")
    pos = (
        Buckets(dp.positive.offset, np.asarray(dp.positive.bucket_counts, np.int64)).trimmed()
        if len(dp.positive.bucket_counts)
        else Buckets()
    )
    neg = (
        Buckets(dp.negative.offset, np.asarray(dp.negative.bucket_counts, np.int64)).trimmed()
        if len(dp.negative.bucket_counts)
        else Buckets()
    )
    bucket_total = int(pos.counts.sum()) + int(neg.counts.sum())
    if dp.count != dp.zero_count + bucket_total:
        raise ValueError(f"count {dp.count} != zero_count {dp.zero_count} + bucket counts {bucket_total}")
    width = max(pos.counts.size, neg.counts.size)
    sketch = ExpHistogram(
        scale=dp.scale if bucket_total else (dp.scale if dp.count else 0),
        zero_count=int(dp.zero_count),
        positive=pos,
        negative=neg,
        count=int(dp.count),
        max_size=max(DEFAULT_MAX_SIZE, width),
    )
    if dp.count == 0:
        return sketch
    lo, hi = bucket_extent(sketch)
    sketch.min = dp.min if dp.HasField("min") and math.isfinite(dp.min) else lo
    sketch.max = dp.max if dp.HasField("max") and math.isfinite(dp.max) else hi
    if dp.HasField("sum") and math.isfinite(dp.sum):
        sketch.sum = float(dp.sum)
    else:
        values, counts = sketch.to_points()
        sketch.sum = float(np.dot(values, counts))
    return sketch


def _explicit_from_point(dp: Any) -> ExplicitHistogram:
    bounds = tuple(dp.explicit_bounds)
    counts = np.asarray(dp.bucket_counts, np.int64)
    if counts.size and counts.size != len(bounds) + 1:
        raise ValueError(f"{counts.size} bucket counts for {len(bounds)} bounds (want bounds + 1)")
    if counts.size and int(counts.sum()) != dp.count:
        raise ValueError(f"count {dp.count} != sum of bucket counts {int(counts.sum())}")
    if not counts.size:
        counts = np.zeros(len(bounds) + 1, np.int64)
        counts[-1] = dp.count  # no buckets: everything in one (+Inf) bucket
    return ExplicitHistogram(
        bounds,
        counts,
        int(dp.count),
        float(dp.sum) if dp.HasField("sum") else 0.0,
        dp.min if dp.HasField("min") else math.nan,
        dp.max if dp.HasField("max") else math.nan,
    )


# -- traces and logs ------------------------------------------------------------------------


def decode_traces_request(data: bytes | Message) -> list[SpanPoint]:
    """Spans in an ``ExportTraceServiceRequest`` (protobuf bytes or message)."""
    return decode_traces(_as_message("traces", data)).points


def decode_traces(msg: Message) -> Decoded:
    out = Decoded()
    items = 0
    for rs in msg.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                items += 1
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    out.reject(
                        f"span {span.name[:60]!r}: trace_id/span_id must be 16/8 bytes, "
                        f"got {len(span.trace_id)}/{len(span.span_id)}"
                    )
                    continue
                attrs = _attrs(span.attributes)
                error = span.status.code == _STATUS_ERROR
                etype = attrs.get("error.type")
                out.points.append(
                    SpanPoint(
                        span.name,
                        resource,
                        attrs,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        error,
                        str(etype) if etype is not None else ("_OTHER" if error else None),
                        span.parent_span_id.hex(),
                        span.kind,
                        span.status.message,
                        tuple((e.name, e.time_unix_nano, _attrs(e.attributes)) for e in span.events),
                    )
                )
    return _check_shape(msg, out, items)


def decode_logs_request(data: bytes | Message) -> list[LogPoint]:
    """Log records in an ``ExportLogsServiceRequest`` (protobuf bytes or message)."""
    return decode_logs(_as_message("logs", data)).points


def decode_logs(msg: Message) -> Decoded:
    out = Decoded()
    items = 0
    for rl in msg.resource_logs:
        resource = _attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                items += 1
                if rec.trace_id and len(rec.trace_id) != 16:
                    out.reject(f"log record: trace_id must be 16 bytes, got {len(rec.trace_id)}")
                    continue
                attrs = _attrs(rec.attributes)
                event = rec.event_name or attrs.get("event.name") or ""
                out.points.append(
                    LogPoint(
                        str(event),
                        resource,
                        attrs,
                        rec.time_unix_nano or rec.observed_time_unix_nano,
                        rec.trace_id.hex(),
                        rec.span_id.hex(),
                        _any_value(rec.body) if rec.HasField("body") else None,
                    )
                )
    return _check_shape(msg, out, items)
