"""A wire-compatible, lighter view of ``ExportMetricsServiceRequest`` for the ingest hot path.

Protobuf cannot tell a sub-message from a ``bytes`` field on the wire (both are
length-delimited), so this module declares the OTLP metrics messages again with the parts the
hot path only needs as bytes declared ``bytes``: a data point's attributes (one ``KeyValue``
each), its ``positive`` / ``negative`` buckets, the resource and scope, and every metric kind but
the exponential histogram. Parsing a request this way builds no Python object per attribute or
per bucket: attribute bytes serve directly as a cache key, and bucket bytes go straight to the
vectorised varint decoder (:func:`infersight.processor.ingest.columns.bucket_counts`).

Fields are declared ``proto2`` ``optional`` so that presence (``HasField``) of ``sum``, ``min``
and ``max`` is kept, as OTLP's ``optional double`` has it.

Example:
    >>> LightRequest.FromString(b"").resource_metrics
    []
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["LightRequest"]

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# message -> [(field name, number, type, label, message type name)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "Request": [("resource_metrics", 1, _F.TYPE_MESSAGE, _REP, "ResourceMetrics")],
    "ResourceMetrics": [
        ("resource", 1, _F.TYPE_BYTES, _OPT, ""),
        ("scope_metrics", 2, _F.TYPE_MESSAGE, _REP, "ScopeMetrics"),
        ("schema_url", 3, _F.TYPE_STRING, _OPT, ""),
    ],
    "ScopeMetrics": [
        ("scope", 1, _F.TYPE_BYTES, _OPT, ""),
        ("metrics", 2, _F.TYPE_MESSAGE, _REP, "Metric"),
        ("schema_url", 3, _F.TYPE_STRING, _OPT, ""),
    ],
    "Metric": [
        ("name", 1, _F.TYPE_STRING, _OPT, ""),
        ("description", 2, _F.TYPE_STRING, _OPT, ""),
        ("unit", 3, _F.TYPE_STRING, _OPT, ""),
        ("gauge", 5, _F.TYPE_BYTES, _OPT, ""),
        ("sum", 7, _F.TYPE_BYTES, _OPT, ""),
        ("histogram", 9, _F.TYPE_BYTES, _OPT, ""),
        ("exponential_histogram", 10, _F.TYPE_MESSAGE, _OPT, "ExpHistogram"),
        ("summary", 11, _F.TYPE_BYTES, _OPT, ""),
        ("metadata", 12, _F.TYPE_BYTES, _REP, ""),
    ],
    "ExpHistogram": [
        ("data_points", 1, _F.TYPE_MESSAGE, _REP, "ExpPoint"),
        ("aggregation_temporality", 2, _F.TYPE_INT32, _OPT, ""),
    ],
    "ExpPoint": [
        ("attributes", 1, _F.TYPE_BYTES, _REP, ""),
        ("start_time_unix_nano", 2, _F.TYPE_FIXED64, _OPT, ""),
        ("time_unix_nano", 3, _F.TYPE_FIXED64, _OPT, ""),
        ("count", 4, _F.TYPE_FIXED64, _OPT, ""),
        ("sum", 5, _F.TYPE_DOUBLE, _OPT, ""),
        ("scale", 6, _F.TYPE_SINT32, _OPT, ""),
        ("zero_count", 7, _F.TYPE_FIXED64, _OPT, ""),
        ("positive", 8, _F.TYPE_BYTES, _OPT, ""),
        ("negative", 9, _F.TYPE_BYTES, _OPT, ""),
        ("flags", 10, _F.TYPE_UINT32, _OPT, ""),
        ("exemplars", 11, _F.TYPE_BYTES, _REP, ""),
        ("min", 12, _F.TYPE_DOUBLE, _OPT, ""),
        ("max", 13, _F.TYPE_DOUBLE, _OPT, ""),
        ("zero_threshold", 14, _F.TYPE_DOUBLE, _OPT, ""),
    ],
}


def _build() -> dict[str, Any]:
    fd = descriptor_pb2.FileDescriptorProto(
        name="infersight_otlp_light.proto", package="infersight.light", syntax="proto2"
    )
    for msg_name, fields in _MESSAGES.items():
        m = fd.message_type.add(name=msg_name)
        for name, number, ftype, label, type_name in fields:
            f = m.field.add(name=name, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".infersight.light.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"infersight.light.{n}")) for n in _MESSAGES}


_CLASSES = _build()
LightRequest: Any = _CLASSES["Request"]
