"""The optional C span encoder (``infersight._speedups``) writes the same bytes as the Python
encoder in ``infersight._otlp_encode``, the reference: for the spans it writes itself and for
those it hands back to the reference (events, links, trace state, other value types).

Without the extension these tests skip, unless ``INFERSIGHT_REQUIRE_SPEEDUPS=1`` (CI), where a
missing extension fails them."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from http import HTTPStatus
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from infersight import _otlp_encode
from infersight._otlp_encode import _ld, encode_request, encode_span
from infersight._spans import FastTracer, LiteSpanProcessor
from support.otlp_sink import attrs

try:
    from infersight import _speedups
except ImportError:
    _speedups = None  # type: ignore[assignment]

REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
RESOURCE = Resource.create({"service.name": "speedups-test"})
SCOPE = ("infersight", "0.1.0", None, None)


def _ext() -> Any:
    """The extension module; skips the test without it (fails it where it is required)."""
    if _speedups is None:
        if REQUIRED:
            pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
        pytest.skip("infersight._speedups is not built")
    return _speedups


def reference(spans: list[Any]) -> bytes:
    """The ScopeSpans.spans fields as the Python encoder writes them."""
    return b"".join(_ld(b"\x12", encode_span(s)) for s in spans)


class Fallbacks:
    """``encode_span``, counting the spans the extension hands back to it."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def __call__(self, span: Any) -> bytes:
        self.spans.append(span)
        return encode_span(span)


def accelerated(spans: list[Any]) -> tuple[bytes, list[Any]]:
    fallback = Fallbacks()
    return _ext().encode_spans(list(spans), fallback), fallback.spans


class StandIn:
    """Anything with a LiteSpan's fields (the encoder reads nothing else)."""

    __slots__ = (
        "name",
        "context",
        "parent",
        "kind",
        "start_time",
        "end_time",
        "attributes",
        "dropped_attributes",
        "events",
        "dropped_events",
        "links",
        "status_code",
        "status_message",
    )

    def __init__(self, **fields: Any) -> None:
        defaults = dict(
            name="span",
            context=SpanContext(1 << 100, 7, False, TraceFlags(1)),
            parent=None,
            kind=SpanKind.INTERNAL,
            start_time=1,
            end_time=2,
            attributes={},
            dropped_attributes=0,
            events=None,
            dropped_events=0,
            links=None,
            status_code=0,
            status_message=None,
        )
        defaults.update(fields)
        for key, value in defaults.items():
            setattr(self, key, value)


class PlainContext:
    """A span context that is not OTel's (read through its attributes, not as a tuple)."""

    def __init__(self, trace_id: int, span_id: int, is_remote: bool, trace_state: Any = None) -> None:
        self.trace_id, self.span_id, self.is_remote, self.trace_state = trace_id, span_id, is_remote, trace_state


class Text(str):
    pass


class Real(float):
    pass


# -- strategies ----------------------------------------------------------------------------------

EDGE_INTS = [0, 1, -1, 127, 128, -128, 2**31, 2**32, 2**63 - 1, -(2**63)]
OUT_OF_RANGE_INTS = [2**63, -(2**63) - 1, 2**64 - 1, 2**64, 2**100, -(2**64)]
LONG_STRINGS = ["", "x" * 127, "x" * 128, "y" * 16383, "y" * 16384, "é" * 9000, "ünï ✓ 😀" * 30]


def _double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


c_ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(min_value=-(2**63), max_value=2**63 - 1))
c_floats = st.one_of(
    st.floats(),
    st.sampled_from([0.0, -0.0, float("inf"), float("-inf"), float("nan"), -float("nan")]),
    st.integers(min_value=0, max_value=2**64 - 1).map(_double),  # any bit pattern, NaN payloads included
)
c_texts = st.one_of(st.text(max_size=40), st.sampled_from(LONG_STRINGS))
c_values = st.one_of(c_texts, st.booleans(), c_ints, c_floats)  # what the extension writes itself
other_values = st.one_of(  # handed to the reference
    st.sampled_from(OUT_OF_RANGE_INTS),
    st.integers(min_value=2**63),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3).map(tuple),
    st.lists(st.text(max_size=5), max_size=3),
    st.binary(max_size=8),
    st.sampled_from([HTTPStatus.OK, TraceFlags(1), Text("sub"), Real(0.5)]),  # subclasses of the four
)
keys = st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(["k" * 200, "ключ" * 50]))
names = st.one_of(st.text(max_size=30), st.sampled_from(LONG_STRINGS))
trace_ids = st.one_of(
    st.integers(min_value=1, max_value=2**128 - 1), st.sampled_from([1, 2**64 - 1, 2**64, 2**128 - 1])
)
span_ids = st.integers(min_value=1, max_value=2**64 - 1)
times = st.integers(min_value=0, max_value=2**64 - 1)
counts = st.one_of(st.just(0), st.integers(min_value=1, max_value=2**40))


@st.composite
def parents(draw: Any) -> SpanContext | None:
    if draw(st.booleans()):
        return None
    return SpanContext(draw(trace_ids), draw(span_ids), draw(st.booleans()), TraceFlags(1))


@st.composite
def statuses(draw: Any) -> tuple[int, str | None]:
    code = draw(st.sampled_from([0, 1, 2]))
    return code, draw(st.one_of(st.none(), st.just(""), st.text(max_size=20), st.sampled_from(LONG_STRINGS)))


@st.composite
def plain_spans(draw: Any, values: Any = c_values) -> StandIn:
    """Spans the extension writes itself (with ``c_values``)."""
    code, message = draw(statuses())
    plain_context = draw(st.booleans())
    trace_id, span_id = draw(trace_ids), draw(span_ids)
    context = (
        PlainContext(trace_id, span_id, False, draw(st.sampled_from([None, TraceState()])))
        if plain_context
        else SpanContext(trace_id, span_id, False, TraceFlags(1))
    )
    parent = draw(parents())
    if parent is not None and draw(st.booleans()):
        parent = PlainContext(parent.trace_id, parent.span_id, parent.is_remote)
    return StandIn(
        name=draw(names),
        context=context,
        parent=parent,
        kind=draw(st.sampled_from(list(SpanKind))),
        start_time=draw(times),
        end_time=draw(times),
        attributes=draw(st.dictionaries(keys, values, max_size=10)),
        dropped_attributes=draw(counts),
        events=draw(st.sampled_from([None, []])),
        dropped_events=draw(counts),
        links=draw(st.sampled_from([None, []])),
        status_code=code,
        status_message=message,
    )


@st.composite
def other_spans(draw: Any) -> StandIn:
    """Spans with something the extension leaves to the reference."""
    span = draw(plain_spans())
    what = draw(st.sampled_from(["value", "events", "links", "trace_state"]))
    if what == "value":
        span.attributes = {**span.attributes, draw(keys): draw(other_values)}
    elif what == "events":
        span.events = [(draw(names), draw(st.dictionaries(keys, c_values, max_size=3)), draw(times), draw(counts))]
    elif what == "links":
        span.links = [
            (
                SpanContext(draw(trace_ids), draw(span_ids), draw(st.booleans())),
                draw(st.dictionaries(keys, c_values, max_size=3)),
                draw(counts),
            )
        ]
    else:
        ctx = span.context
        span.context = SpanContext(ctx.trace_id, ctx.span_id, False, TraceFlags(1), TraceState([("vendor", "x1")]))
    return span


# -- equal bytes ---------------------------------------------------------------------------------


def test_the_extension_is_there_where_it_is_required():
    if not REQUIRED:
        pytest.skip("INFERSIGHT_REQUIRE_SPEEDUPS is not set")
    assert _speedups is not None, "infersight._speedups is not built"
    assert _otlp_encode.ACCELERATED or os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_spans())
def test_spans_the_extension_writes_are_the_references_bytes(span):
    out, handed_back = accelerated([span])
    assert handed_back == []  # written in C, not by the fallback
    assert out == reference([span])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(other_spans())
def test_spans_left_to_the_reference_are_its_bytes(span):
    out, handed_back = accelerated([span])
    assert handed_back == [span]
    assert out == reference([span])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(plain_spans(), other_spans()), max_size=8))
def test_mixed_batches_are_the_references_bytes(spans):
    out, _ = accelerated(spans)
    assert out == reference(spans)


@pytest.mark.parametrize(
    "value",
    EDGE_INTS
    + OUT_OF_RANGE_INTS
    + LONG_STRINGS
    + [
        True,
        False,
        0.0,
        -0.0,
        float("nan"),
        -float("nan"),
        _double(0x7FF0000000000001),
        _double(0xFFF8DEADBEEF0001),
        float("inf"),
        float("-inf"),
        5e-324,
        1.5,
    ],
)
def test_edge_values(value):
    span = StandIn(attributes={"k": value})
    out, handed_back = accelerated([span])
    assert out == reference([span])
    assert bool(handed_back) == (type(value) is int and not -(2**63) <= value < 2**63)


def test_span_lengths_around_every_varint_size():
    # Bodies whose lengths take 1, 2, 3 and 4 bytes, each side of each boundary.
    base = len(encode_span(StandIn(name="")))
    seen = set()
    for boundary in (128, 16384, 2**21):
        for name_length in range(boundary - base - 8, boundary - base + 2):
            span = StandIn(name="n" * name_length)
            out, handed_back = accelerated([span])
            assert handed_back == [] and out == reference([span])
            seen.add(len(encode_span(span)))
    assert {127, 128, 16383, 16384, 2**21 - 1, 2**21} <= seen


@pytest.mark.parametrize("parent", [None, SpanContext(3, 4, False), SpanContext(3, 4, True)])
@pytest.mark.parametrize("status", [(0, None), (0, ""), (1, None), (2, "boom"), (2, ""), (0, "odd"), (2, "ü" * 200)])
def test_parents_and_statuses(parent, status):
    span = StandIn(parent=parent, status_code=status[0], status_message=status[1], kind=SpanKind.SERVER)
    out, handed_back = accelerated([span])
    assert handed_back == [] and out == reference([span])


@pytest.mark.parametrize(
    "fields",
    [
        {"status_code": 127},
        {"status_code": -1},
        {"dropped_attributes": -1},
        {"dropped_events": 2**64},
        {"dropped_attributes": True},
        {"kind": 5},
        {"events": ()},
        {"links": [(SpanContext(1, 2, False), {}, 0)]},
        {"attributes": None},
        {"attributes": {"k": None}},
        {"status_message": None, "status_code": 0},
    ],
)
def test_odd_fields_give_the_references_answer(fields):
    span = StandIn(**fields)
    try:
        expected: Any = reference([span])
    except Exception as e:  # noqa: BLE001 - whatever the reference raises, the extension raises
        expected = type(e)
    try:
        out: Any = accelerated([span])[0]
    except Exception as e:  # noqa: BLE001
        out = type(e)
    assert out == expected


@pytest.mark.parametrize(
    "span",
    [
        StandIn(name="\udfff"),
        StandIn(status_code=2, status_message="\ud800"),
        StandIn(context=SpanContext(2**128, 1, False)),
        StandIn(context=PlainContext(-1, 1, False)),
        StandIn(context=PlainContext(1, -1, False)),
        StandIn(end_time=None),
        StandIn(start_time=2**64),
        StandIn(parent=PlainContext(1, 2**64, False)),
    ],
)
def test_spans_the_reference_cannot_encode_raise_the_same(span):
    with pytest.raises(Exception) as theirs:
        reference([span])
    with pytest.raises(theirs.type):
        accelerated([span])


def test_a_fallback_that_does_not_return_bytes_is_an_error():
    with pytest.raises(TypeError):
        _ext().encode_spans([StandIn(events=[("e", {}, 1, 0)])], lambda span: "text")
    with pytest.raises(TypeError):
        _ext().encode_spans([StandIn()], None)


def test_a_fallback_that_changes_the_list_is_harmless():
    spans = [StandIn(events=[("e", {}, 1, 0)]), StandIn(), StandIn()]

    def fallback(span: Any) -> bytes:
        spans.clear()
        return encode_span(span)

    assert _ext().encode_spans(spans, fallback) == reference([StandIn(events=[("e", {}, 1, 0)])])


def test_no_references_are_kept_or_lost():
    ext = _ext()
    value, key, name = "v" * 50 + "ü", "key-" + "k" * 10, "name" + "ü" * 3
    attrs = {key: value, "n": 10**12, "f": 0.5}
    plain = StandIn(name=name, attributes=attrs, parent=SpanContext(3, 4, True))
    other = StandIn(name=name, attributes=attrs, events=[("e", {}, 1, 0)])
    spans = [plain, other]
    ext.encode_spans(spans, encode_span)  # the reference's caches take their references once
    before = [sys.getrefcount(o) for o in (value, key, name, attrs, plain, other, spans, encode_span)]
    for _ in range(1000):
        ext.encode_spans(spans, encode_span)
    assert [sys.getrefcount(o) for o in (value, key, name, attrs, plain, other, spans, encode_span)] == before


# -- the whole request, and real spans -----------------------------------------------------------


def _tracer(limits: SpanLimits | None = None) -> FastTracer:
    provider = TracerProvider(resource=RESOURCE, span_limits=limits)
    processor = LiteSpanProcessor(None)
    provider.add_span_processor(processor)
    return FastTracer(provider, processor, "infersight", "0.1.0", expected=1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            names,
            st.sampled_from(list(SpanKind)),
            st.dictionaries(keys, c_values, max_size=8),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_requests_of_lite_spans_are_the_pure_python_bytes(specs):
    _ext()
    tracer = _tracer()
    spans = []
    for name, kind, attributes, with_event, error in specs:
        span = tracer.start_span(name, kind=kind, attributes=dict(attributes))
        if with_event:
            span.add_event("e", {"x": 1})
        if error:
            span.set_status(Status(StatusCode.ERROR, "failed"))
        span.end_time = span.start_time + 1000  # ended without queueing
        spans.append(span)
    fast = encode_request(RESOURCE, SCOPE, spans, accelerated=True)
    assert fast == encode_request(RESOURCE, SCOPE, spans, accelerated=False)
    assert fast == encode_request(RESOURCE, SCOPE, iter(spans), accelerated=True)  # any iterable
    ExportTraceServiceRequest.FromString(fast)


def test_typical_server_spans_are_written_in_c():
    ext = _ext()
    tracer = _tracer(SpanLimits(max_span_attributes=4))  # some of them limited (a dict subclass)
    spans = []
    for i in range(64):
        attributes = {
            "http.request.method": "POST",
            "url.path": "/predict",
            "ml.request.id": f"{i:032x}",
            "server.port": 8000,
            "ratio": i / 7,
        }
        span = tracer.start_span(
            "POST", kind=SpanKind.SERVER, attributes=attributes if i % 2 else dict(list(attributes.items())[:3])
        )
        span.set_attributes({"http.response.status_code": 200, "http.route": "/predict"})
        span.update_name("POST /predict")
        span.end_time = span.start_time + 1000
        spans.append(span)
    assert any(s.dropped_attributes for s in spans)
    fallback = Fallbacks()
    assert ext.encode_spans(spans, fallback) == reference(spans)
    assert fallback.spans == []
    assert encode_request(RESOURCE, SCOPE, spans) == encode_request(RESOURCE, SCOPE, spans, accelerated=False)


UNENCODABLE = [
    2**63,
    2**70,
    -(2**63) - 1,
    -(2**64),
    2**64 - 1,
    (1, 2**63),
    [0, -(2**63) - 1],
    ("a", object()),
    {"inner": 2**64},
    object(),
    "lone \ud800 surrogate",
    np.int64(3),
    np.uint64(2**64 - 1),
    np.bool_(True),
]
ENCODABLE = {
    "lowest": -(2**63),
    "highest": 2**63 - 1,
    "yes": True,
    "no": False,
    "zero": 0,
    "status": HTTPStatus.OK,
    "ints": (-(2**63), 2**63 - 1),
    "flags": (True, False),
}


def _sent(payload: bytes) -> tuple[Any, Any]:
    """The resource and the only span of a request, parsed by opentelemetry-proto."""
    request = ExportTraceServiceRequest.FromString(payload)
    (resource_spans,) = request.resource_spans
    (span,) = resource_spans.scope_spans[0].spans
    return resource_spans.resource, span


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("bad", UNENCODABLE, ids=repr)
def test_attributes_otlp_cannot_carry_are_left_out_and_the_span_is_sent(fast, bad):
    """As the OTel exporter does (it logs and skips the key): the attribute is left out, on the
    span, its events and links, the scope and the resource; the span and the rest stay."""
    if fast:
        _ext()
    _otlp_encode.take_invalid_count()
    attributes = {"bad": bad, **ENCODABLE}
    span = StandIn(
        attributes=attributes,
        events=[("e", dict(attributes), 5, 0)],
        links=[(SpanContext(9, 8, True), dict(attributes), 0)],
    )
    resource = Resource({"service.name": "s"})
    resource._attributes = {"service.name": "s", "bad": bad}  # noqa: SLF001 - Resource cleans what it is given
    payload = encode_request(resource, ("scope", "1", {"bad": bad, "ok": 1}, None), [span], accelerated=fast)
    assert payload == encode_request(
        resource, ("scope", "1", {"bad": bad, "ok": 1}, None), [span], accelerated=not fast
    )
    # span, event, link, scope and resource; the second encoding reuses the resource's bytes
    assert _otlp_encode.take_invalid_count() == 5 + 4
    sent_resource, sent = _sent(payload)
    expected = {
        "lowest": -(2**63),
        "highest": 2**63 - 1,
        "yes": True,
        "no": False,
        "zero": 0,
        "status": 200,
        "ints": [-(2**63), 2**63 - 1],
        "flags": [True, False],
    }
    assert attrs(sent.attributes) == expected
    assert attrs(sent.events[0].attributes) == expected and attrs(sent.links[0].attributes) == expected
    assert attrs(sent_resource.attributes) == {"service.name": "s"}
    scope = ExportTraceServiceRequest.FromString(payload).resource_spans[0].scope_spans[0].scope
    assert attrs(scope.attributes) == {"ok": 1}
    assert sent.dropped_attributes_count == 0  # as the OTel exporter: left out, not counted as dropped


def test_a_batch_with_one_unencodable_value_is_sent_whole_either_way():
    _ext()
    spans = [StandIn(attributes={"i": i, **({"big": 2**63} if i == 300 else {})}) for i in range(512)]
    for fast in (True, False):
        request = ExportTraceServiceRequest.FromString(encode_request(RESOURCE, SCOPE, spans, accelerated=fast))
        sent = request.resource_spans[0].scope_spans[0].spans
        assert [attrs(s.attributes) for s in sent] == [{"i": i} for i in range(512)]
    _otlp_encode.take_invalid_count()


def test_pure_python_variable_turns_the_extension_off():
    probe = "import infersight._otlp_encode as e; print(e.ACCELERATED, e._speedups is None)"
    env = {**os.environ, "INFERSIGHT_PURE_PYTHON": "1"}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "True"]
    assert _otlp_encode.ACCELERATED == (_speedups is not None and os.environ.get("INFERSIGHT_PURE_PYTHON") != "1")


# -- untrack: spans out of the cyclic collector's view ----------------------------------------------


def test_untrack_takes_containers_out_of_the_collectors_view_and_ignores_the_rest():
    ext = _ext()
    import gc

    class Holder:
        __slots__ = ("value",)

    h = Holder()
    d = {"k": [1, 2]}  # holds a container, so the interpreter tracks it
    assert gc.is_tracked(h) and gc.is_tracked(d)
    assert ext.untrack(h, d, 7, "text", None) is None  # atoms are not containers: nothing to do
    assert not gc.is_tracked(h) and not gc.is_tracked(d)
    d["t"] = ([],)  # a dict tracks itself again when it takes a container
    assert gc.is_tracked(d)
    assert ext.track(h, d, 7, "text", None) is None  # back in view; tracked ones and atoms left alone
    assert gc.is_tracked(h) and gc.is_tracked(d)


def test_spans_are_untracked_and_still_export_whole_after_collections():
    _ext()
    import gc

    provider = TracerProvider(resource=RESOURCE)
    processor = LiteSpanProcessor(None)
    provider.add_span_processor(processor)
    tracer = FastTracer(provider, processor, "infersight", "0.1.0", expected=1)
    span = tracer.start_span("predict", attributes={"ml.model.name": "m", "ml.batch.size": 3})
    assert not gc.is_tracked(span.context) and not gc.is_tracked(span.attributes)
    assert gc.is_tracked(span)  # while it records: the application may hang anything on it
    span.set_attribute("ml.tags", ("a", "b"))
    span.add_event("checked", {"rows": 3})
    span.set_status(Status(StatusCode.ERROR, "bad"))
    gc.collect()  # a full collection while the span is held only by its owner and the queue
    span.end()
    gc.collect()
    queued = list(processor._queue)  # noqa: SLF001 - the export queue, as the export thread sees it
    assert queued == [span] and not gc.is_tracked(span)  # waiting for export: out of the collector's view
    assert span.attributes["ml.tags"] == ("a", "b") and span.events and span.status_code == StatusCode.ERROR.value
    payload = encode_request(RESOURCE, SCOPE, queued)
    assert payload == encode_request(RESOURCE, SCOPE, queued, accelerated=False)
    (sent,) = ExportTraceServiceRequest.FromString(payload).resource_spans[0].scope_spans[0].spans
    assert sent.name == "predict" and [e.name for e in sent.events] == ["checked"]
    assert sent.status.message == "bad" and len(sent.attributes) == 3
    assert processor.force_flush() and gc.is_tracked(span)  # taken for export: back in view
    processor.shutdown()


class _Request:
    """An application object that points at its span, as a framework's request might."""


@pytest.mark.parametrize(
    "when", ["recording", "ended and exported", "ended, then set, then exported", "dropped by a full queue"]
)
def test_a_cycle_through_a_span_is_freed(when):
    """Spans have a __dict__ (``opentelemetry.trace.Span`` has no __slots__): an application can
    hang an object on one that points back at it. Such a cycle is freed by the collector,
    whenever it is made; out of the collector's view are only the spans waiting for export."""
    import gc
    import weakref

    provider = TracerProvider(resource=RESOURCE)
    processor = LiteSpanProcessor(None)
    if when == "dropped by a full queue":
        processor.max_queue = 0
    provider.add_span_processor(processor)
    tracer = FastTracer(provider, processor, "infersight", "0.1.0", expected=1)
    span = tracer.start_span("predict", attributes={"ml.model.name": "m"})
    request = _Request()
    if when != "ended, then set, then exported":
        span.request = request  # the cycle: span -> request -> span
        request.span = span
    if when != "recording":
        span.end()
    if when == "ended, then set, then exported":
        span.request = request
        request.span = span
    assert processor.force_flush()
    gone_span, gone_request = weakref.ref(span), weakref.ref(request)
    del span, request
    gc.collect()
    assert gone_span() is None and gone_request() is None
    processor.shutdown()
