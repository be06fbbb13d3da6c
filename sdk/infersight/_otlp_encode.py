"""OTLP protobuf encoding of infersight's own spans, written straight to bytes.

The OTel exporters build a protobuf message object per span, attribute and value in Python
before serialising: on a model server that cost (about 25 µs a span) lands on the same core as
the requests. Spans made by :mod:`infersight._spans` are encoded here instead, field by field
into the wire format of ``ExportTraceServiceRequest`` (opentelemetry-proto
``collector/trace/v1``), with the bytes of recurring key/value pairs remembered: a model server
repeats its method, route, scheme, host, model name and version on every span.

The output parses into exactly the message the OTel encoder builds for the same span (tested
field for field against ``encode_spans``), so collectors cannot tell the two apart.

Where the optional C extension :mod:`infersight._speedups` was built (``setup.py``; an install
without a C compiler goes on without it), :func:`encode_request` has it write the spans: the
same bytes, byte for byte, at a fraction of the cost. :func:`encode_span` here stays the
reference, and the extension hands it every span it does not write itself (events, links, a
trace state, attribute values other than str, bool, 64-bit int and float). ``ACCELERATED``
tells whether the extension is in use; the environment variable ``INFERSIGHT_PURE_PYTHON=1``,
read once at import, turns it off.

Example:
    >>> from infersight._otlp_encode import encode_any_value
    >>> encode_any_value("hi"), encode_any_value(True), encode_any_value(3)
    (b'\\n\\x02hi', b'\\x10\\x01', b'\\x18\\x03')
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from infersight._extension import speedups

__all__ = [
    "ACCELERATED",
    "encode_any_value",
    "encode_attributes",
    "encode_request",
    "encode_span",
    "take_invalid_count",
]

_log = logging.getLogger("infersight")


_speedups: Any = speedups  # the C extension (infersight._extension: the one switch), or None

#: Whether :func:`encode_request` writes spans with the C extension.
ACCELERATED: bool = _speedups is not None

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_U64 = 1 << 64
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

# Span.flags (fixed32): the parent's is-remote bit is known; set when the parent is remote.
FLAGS_HAS_IS_REMOTE = 0x100
FLAGS_IS_REMOTE = 0x200


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Length prefixes below 128 bytes are one byte; precomputed for the common case.
_SHORT = [bytes((i,)) for i in range(128)]


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SHORT[n] if n < 128 else _varint(n)) + payload


def encode_any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body for an attribute value (the OTel encoder's type rules:
    bool before int, str, int, float, bytes, sequences, mappings; ``None`` is an empty value)."""
    if value is None:
        return b""
    t = type(value)
    if t is str:
        return _ld(b"\x0a", value.encode("utf-8"))
    if t is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if t is int:
        if value < _I64_MIN or value > _I64_MAX:
            raise ValueError(f"integer {value} is outside the signed 64-bit range of OTLP's int_value")
        return b"\x18" + _varint(value if value >= 0 else value + _U64)
    if t is float:
        return b"\x21" + _pack_d(value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _ld(b"\x0a", str(value).encode("utf-8"))
    if isinstance(value, int):
        return encode_any_value(int(value))
    if isinstance(value, float):
        return b"\x21" + _pack_d(float(value))
    if isinstance(value, bytes):
        return _ld(b"\x3a", value)
    if isinstance(value, Sequence):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", encode_any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _ld(b"\x32", b"".join(_ld(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"attribute value {value!r} of type {t.__name__} cannot be encoded")


# Attributes the encoder left out (see _invalid): counted for the export thread, logged once.
_invalid = 0
_invalid_lock = threading.Lock()
_invalid_logged = False


def _invalid_attribute(key: Any, value: Any, exc: Exception) -> bytes:
    """Leave out one attribute whose value OTLP has no place for (an int outside signed 64 bits,
    a type with no ``AnyValue`` field), as the OTel exporter does (``_encode_attributes`` logs
    and skips the key): the span, and the batch it travels in, still go out."""
    global _invalid, _invalid_logged
    with _invalid_lock:
        _invalid += 1
        first = not _invalid_logged
        _invalid_logged = True
    if first:
        _log.warning(
            "infersight: attribute %r left out of the exported span (%s); further attributes OTLP "
            "cannot carry are left out without a log line and counted in ml.telemetry.dropped",
            key,
            exc,
        )
    return b""


def take_invalid_count() -> int:
    """How many attributes were left out since the last call (and reset the count)."""
    global _invalid
    with _invalid_lock:
        n, _invalid = _invalid, 0
    return n


def _key_value(key: str, value: Any) -> bytes:
    return _ld(b"\x0a", key.encode("utf-8")) + _ld(b"\x12", encode_any_value(value))


# Encoded KeyValue messages by (key, value type, value). Values that are unique per request
# (request IDs) would only churn it, so those keys bypass it; the rest is bounded all the same.
_kv_cache: dict[tuple[str, type, Any], bytes] = {}
_KV_CACHE_LIMIT = 4096
UNCACHED_KEYS = frozenset({"ml.request.id"})


def _remembered(
    cache: dict[tuple[str, type, Any], bytes], key: str, value: Any, encode: Callable[[str, Any], bytes]
) -> bytes:
    """``encode(key, value)``, kept in ``cache`` for values that recur."""
    t = type(value)
    # Floats stay out: -0.0 == 0.0 (one cache entry for two encodings) and NaN never matches.
    if key in UNCACHED_KEYS or t not in (str, int, bool):
        return encode(key, value)
    ck = (key, t, value)
    hit = cache.get(ck)
    if hit is None:
        hit = encode(key, value)
        if len(cache) >= _KV_CACHE_LIMIT:
            cache.clear()
        cache[ck] = hit
    return hit


def _kv(key: str, value: Any) -> bytes:
    return _remembered(_kv_cache, key, value, _key_value)


def encode_attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """Each attribute as a length-delimited ``KeyValue`` field with ``tag``; an attribute whose
    value cannot be encoded is left out (and counted)."""
    if not attributes:
        return []
    out = []
    for k, v in attributes.items():
        try:
            out.append(_ld(tag, _kv(k, v)))
        except (TypeError, ValueError, AttributeError) as exc:
            _invalid_attribute(k, v, exc)
    return out


def _event(name: str, attributes: Mapping[str, Any] | None, timestamp: int, dropped: int) -> bytes:
    parts = [b"\x09" + _pack_q(timestamp), _ld(b"\x12", name.encode("utf-8"))]
    parts += encode_attributes(b"\x1a", attributes)
    if dropped:
        parts.append(b"\x20" + _varint(dropped))
    return b"".join(parts)


def _link(trace_id: int, span_id: int, is_remote: bool, attributes: Mapping[str, Any] | None, dropped: int) -> bytes:
    parts = [b"\x0a\x10" + trace_id.to_bytes(16, "big"), b"\x12\x08" + span_id.to_bytes(8, "big")]
    parts += encode_attributes(b"\x22", attributes)
    if dropped:
        parts.append(b"\x28" + _varint(dropped))
    parts.append(b"\x35" + _pack_i(FLAGS_HAS_IS_REMOTE | (FLAGS_IS_REMOTE if is_remote else 0)))
    return b"".join(parts)


_span_ids = struct.Struct(">BBQQBBQ").pack  # trace_id (16 bytes as two big-endian halves), span_id
_times = struct.Struct("<BQBQ").pack  # start and end time, fixed64 each
_flags_local = b"\x85\x01" + _pack_i(FLAGS_HAS_IS_REMOTE)
_flags_remote = b"\x85\x01" + _pack_i(FLAGS_HAS_IS_REMOTE | FLAGS_IS_REMOTE)
_M64 = (1 << 64) - 1

# Span attributes as complete ``attributes`` fields (tag, length, KeyValue), by (key, type,
# value): the hot loop of the encoder is one lookup per attribute.
_attr_cache: dict[tuple[str, type, Any], bytes] = {}


def _span_attr_field(key: str, value: Any) -> bytes:
    return _ld(b"\x4a", _key_value(key, value))


def _span_attr(key: str, value: Any) -> bytes:
    try:
        return _remembered(_attr_cache, key, value, _span_attr_field)
    except (TypeError, ValueError, AttributeError) as exc:  # not remembered: each span that has it is counted
        return _invalid_attribute(key, value, exc)


def encode_span(span: Any) -> bytes:
    """One ``Span`` message body from an :class:`infersight._spans.LiteSpan` (or anything with
    its fields)."""
    ctx = span.context
    trace_id = ctx.trace_id
    parts = [_span_ids(0x0A, 0x10, trace_id >> 64, trace_id & _M64, 0x12, 0x08, ctx.span_id)]
    trace_state = ctx.trace_state
    if trace_state:
        parts.append(_ld(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items()).encode("utf-8")))
    parent = span.parent
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    name = span.name.encode("utf-8")
    parts.append(b"\x2a" + (_SHORT[len(name)] if len(name) < 128 else _varint(len(name))) + name)
    parts.append(b"\x30" + _SHORT[span.kind.value + 1])
    parts.append(_times(0x39, span.start_time, 0x41, span.end_time))
    attributes = span.attributes
    if attributes:
        cache = _attr_cache
        for k, v in attributes.items():
            t = type(v)
            hit = cache.get((k, t, v)) if t is str or t is int else None
            parts.append(hit if hit is not None else _span_attr(k, v))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    events = span.events
    if events:
        for ev_name, attrs, ts, dropped in events:
            parts.append(_ld(b"\x5a", _event(ev_name, attrs, ts, dropped)))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    links = span.links
    if links:
        for lctx, attrs, dropped in links:
            parts.append(_ld(b"\x6a", _link(lctx.trace_id, lctx.span_id, lctx.is_remote, attrs, dropped)))
    code = span.status_code
    message = span.status_message
    if code or message:
        status = (_ld(b"\x12", message.encode("utf-8")) if message else b"") + (b"\x18" + _SHORT[code] if code else b"")
        parts.append(_ld(b"\x7a", status))
    else:
        parts.append(b"\x7a\x00")  # the OTel encoder always sets status, even UNSET
    parts.append(_flags_remote if parent is not None and parent.is_remote else _flags_local)
    return b"".join(parts)


def _scope(name: str, version: str | None, attributes: Mapping[str, Any] | None) -> bytes:
    body = _ld(b"\x0a", name.encode("utf-8")) if name else b""
    if version:
        body += _ld(b"\x12", version.encode("utf-8"))
    return body + b"".join(encode_attributes(b"\x1a", attributes))


_resource_cache: dict[int, tuple[Any, bytes]] = {}


def _resource(resource: Any) -> bytes:
    """The ``Resource`` field of a ``ResourceSpans``, remembered per resource object (a provider
    keeps one resource; it is replaced, not mutated, when it changes)."""
    hit = _resource_cache.get(id(resource))
    if hit is not None and hit[0] is resource:
        return hit[1]
    encoded = _ld(b"\x0a", b"".join(encode_attributes(b"\x0a", resource.attributes)))
    if len(_resource_cache) > 16:
        _resource_cache.clear()
    _resource_cache[id(resource)] = (resource, encoded)
    return encoded


def encode_request(
    resource: Any,
    scope: tuple[str, str | None, Mapping[str, Any] | None, str | None],
    spans: Iterable[Any],
    *,
    accelerated: bool = ACCELERATED,
) -> bytes:
    """A whole ``ExportTraceServiceRequest``: one resource, one instrumentation scope
    ``(name, version, attributes, schema_url)``, the given spans.

    Each span costs one :func:`encode_span`, or is written by the C extension when
    ``accelerated`` (by default where it is in use; ``False`` forces the Python encoder, the
    bytes are the same). An attribute OTLP cannot carry (an integer outside signed 64 bits, a
    value of a type with no ``AnyValue`` field, alone or inside a sequence or mapping; on the
    span, its events and links, the scope or the resource) is left out, logged once and counted
    (:func:`take_invalid_count`), as the OTel exporter leaves it out: its span and the rest of
    the batch are sent."""
    name, version, attributes, schema_url = scope
    scope_spans = [_ld(b"\x0a", _scope(name, version, attributes))]
    if accelerated and _speedups is not None:
        scope_spans.append(_speedups.encode_spans(list(spans), encode_span))
    else:
        scope_spans += [_ld(b"\x12", encode_span(s)) for s in spans]
    if schema_url:
        scope_spans.append(_ld(b"\x1a", schema_url.encode("utf-8")))
    resource_spans = _resource(resource) + _ld(b"\x12", b"".join(scope_spans))
    if getattr(resource, "schema_url", ""):
        resource_spans += _ld(b"\x1a", resource.schema_url.encode("utf-8"))
    return _ld(b"\x0a", resource_spans)
