"""infersight's own span path (``infersight._spans``): spans equal to the SDK's on the wire,
sampling and limits as the SDK applies them, and the fall-back to the SDK when the application
adds a span processor of its own."""

from __future__ import annotations

import doctest
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

import infersight
from infersight import _otlp_encode, _otlp_exporters, _spans
from infersight._spans import FastTracer, LiteSpan, LiteSpanProcessor
from support.otlp_sink import OtlpSink, attrs

RESOURCE = Resource.create({"service.name": "spans-test", "deployment.environment.name": "ci", "n": 3})


def _tracer(sampler=None, limits=None, exporter=None):
    provider = TracerProvider(resource=RESOURCE, sampler=sampler, span_limits=limits)
    processor = LiteSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider, FastTracer(provider, processor, "infersight", "0.1.0", expected=1), processor


def _same_on_the_wire(spans: list[LiteSpan], tracer: FastTracer) -> None:
    ours = ExportTraceServiceRequest.FromString(
        _otlp_encode.encode_request(RESOURCE, ("infersight", "0.1.0", None, None), spans)
    )
    theirs = encode_spans([s.to_readable(RESOURCE, tracer.scope) for s in spans])
    assert ours == theirs


def test_examples_in_docstrings_hold():
    for module in (_spans, _otlp_encode, _otlp_exporters):
        assert doctest.testmod(module).failed == 0


def test_a_full_span_encodes_as_the_otel_encoder_does():
    _, tracer, _ = _tracer()
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        True,
        TraceFlags(TraceFlags.SAMPLED),
        TraceState([("vendor", "x1"), ("other", "y")]),
    )
    parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    server = tracer.start_span(
        "POST",
        context=parent_ctx,
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "server.port": 8000,
            "ml.request.id": "ab" * 16,
            "ratio": 0.25,
            "flag": False,
        },
    )
    assert server.get_span_context().trace_id == remote.trace_id
    assert server.get_span_context().trace_state == remote.trace_state
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        child = tracer.start_span("predict m", attributes={"ml.batch.size": 1})
    finally:
        otel_context.detach(token)
    assert child.parent.span_id == server.get_span_context().span_id and not child.parent.is_remote
    child.set_attributes({"neg": -5, "big": 2**62, "tags": ["a", "b"], "nums": (1.5, 2.5), "ünï": "çödé ✓"})
    child.add_event("ml.schema.violation", {"ml.feature.name": "x", "count": 2}, timestamp=1_700_000_000_000_000_000)
    try:
        raise KeyError("missing")
    except KeyError as e:
        child.record_exception(e)
    child.set_status(Status(StatusCode.ERROR, "KeyError"))
    child.add_link(SpanContext(7, 9, False, TraceFlags(1)), {"why": "batch"})
    child.end()
    server.update_name("POST /predict")
    server.set_status(StatusCode.OK)
    server.end()
    _same_on_the_wire([child, server], tracer)
    decoded = ExportTraceServiceRequest.FromString(
        _otlp_encode.encode_request(RESOURCE, ("infersight", "0.1.0", None, None), [child, server])
    )
    spans = decoded.resource_spans[0].scope_spans[0].spans
    assert spans[1].name == "POST /predict" and spans[1].kind == 2 and spans[1].flags == 0x300
    assert spans[0].events[1].name == "exception"
    assert attrs(spans[0].events[1].attributes)["exception.type"] == "KeyError"


attribute_values = st.one_of(
    st.text(max_size=40),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=4),
    st.lists(st.integers(min_value=-1000, max_value=1000), max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=20), attribute_values, max_size=12),
    st.text(max_size=30),
    st.sampled_from(list(SpanKind)),
)
def test_any_attributes_encode_as_the_otel_encoder_does(attributes, name, kind):
    _, tracer, _ = _tracer()
    span = tracer.start_span(name, kind=kind)
    span.set_attributes(attributes)
    span.add_event("e", attributes)
    span.end()
    _same_on_the_wire([span], tracer)


def test_sampling_follows_the_parent_and_the_providers_sampler():
    _, tracer, processor = _tracer()
    unsampled = SpanContext(5, 6, True, TraceFlags(TraceFlags.DEFAULT))
    span = tracer.start_span("x", context=trace.set_span_in_context(NonRecordingSpan(unsampled)))
    assert not span.is_recording() and span.get_span_context().trace_id == 5
    assert not span.get_span_context().trace_flags.sampled

    _, never, _ = _tracer(sampler=ALWAYS_OFF)
    assert not never.start_span("x").is_recording()

    _, ratio, _ = _tracer(sampler=ParentBased(TraceIdRatioBased(0.5)))
    kept = sum(ratio.start_span("x").is_recording() for _ in range(2000))
    assert 800 < kept < 1200  # the SDK's trace-ID ratio rule, not ours


@settings(max_examples=300, deadline=None)
@given(
    ratio=st.sampled_from([0.0, 1e-6, 0.1, 0.5, 0.999, 1.0]),
    trace_id=st.integers(1, (1 << 128) - 1),
    parent=st.sampled_from(
        ["none", "local-sampled", "local-unsampled", "remote-sampled", "remote-unsampled", "invalid"]
    ),
    trace_state=st.sampled_from([None, TraceState([("vendor", "v1")])]),
)
def test_infersights_sampler_answered_inline_decides_as_the_sdk(ratio, trace_id, parent, trace_state):
    """The span path answers infersight's ParentBased(TraceIdRatioBased(ratio)) without calling
    it: same decision and trace state as the SDK sampler, for roots (every trace-ID shape) and for
    valid, invalid, local and remote parents of either decision."""
    from infersight._runtime import _RatioSampler

    sampler = _RatioSampler(ratio)
    provider, tracer, _ = _tracer(sampler=sampler)
    context = None
    if parent != "none":
        flags = TraceFlags(TraceFlags.SAMPLED if parent.endswith("-sampled") else TraceFlags.DEFAULT)
        valid = parent != "invalid"
        parent_ctx = SpanContext(
            trace_id if valid else 0, 0xABC if valid else 0, parent.startswith("remote"), flags, trace_state
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent_ctx))

    class FixedIds(_spans.RandomIdGenerator):  # same ID algorithm, but the trace ID this example chose
        def generate_trace_id(self) -> int:
            return trace_id

    provider.id_generator = FixedIds()
    span = tracer.start_span("x", context=context)
    expected = sampler._delegate.should_sample(context, trace_id, "x")  # noqa: SLF001
    assert span.is_recording() == expected.decision.is_sampled()
    assert span.get_span_context().trace_flags.sampled == expected.decision.is_sampled()
    assert span.get_span_context().trace_id == trace_id
    assert span.get_span_context().trace_state == (expected.trace_state or TraceState())


def test_limits_and_ended_spans_behave_as_in_the_sdk():
    _, tracer, _ = _tracer(limits=SpanLimits(max_span_attributes=3, max_events=1, max_attribute_length=4))
    span = tracer.start_span("x", attributes={"a": "long value", "b": 1})
    span.set_attributes({"c": 2, "d": 3, "a": "zz"})
    span.set_attribute("bad", object())
    span.add_event("one")
    span.add_event("two")
    assert span.attributes == {"a": "zz", "b": 1, "c": 2}
    assert span.dropped_attributes == 1 and span.dropped_events == 1
    readable = span.to_readable(RESOURCE, tracer.scope)
    assert readable.dropped_attributes == 1 and readable.dropped_events == 1
    span.set_status(StatusCode.OK)
    span.set_status(Status(StatusCode.ERROR, "late"))  # OK is final
    span.end()
    span.set_attribute("after", 1)
    span.end()  # a second end is ignored
    assert "after" not in span.attributes and span.status_code == StatusCode.OK.value


def test_an_application_span_processor_sees_infersights_spans():
    provider, tracer, processor = _tracer()
    seen = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(seen))
    span = tracer.start_span("predict m", attributes={"ml.model.name": "m"})
    assert not isinstance(span, LiteSpan)  # the SDK's own span: every processor gets it
    span.end()
    assert [s.name for s in seen.get_finished_spans()] == ["predict m"]


def test_a_full_queue_drops_and_counts_without_logging(caplog):
    dropped = []
    exporter = InMemorySpanExporter()
    processor = LiteSpanProcessor(exporter, on_drop=dropped.append)
    processor.max_queue = processor.batch = 3
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(processor)
    tracer = FastTracer(provider, processor, "infersight", "0.1.0", expected=1)
    processor._wake = threading.Event()  # keep the export thread asleep while the queue fills
    with caplog.at_level(logging.DEBUG):
        for i in range(5):
            tracer.start_span(f"s{i}").end()
    assert dropped == ["span_queue_full", "span_queue_full"]
    assert not [r for r in caplog.records if "queue" in r.getMessage()]
    assert processor.force_flush()
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["s0", "s1", "s2"]
    assert exporter.get_finished_spans()[0].resource is RESOURCE


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_monitor_and_application_spans_nest_on_the_wire(protocol, model_name):
    with OtlpSink() as sink:
        endpoint = sink.grpc_endpoint if protocol == "grpc" else sink.http_endpoint
        infersight.configure(endpoint=endpoint, protocol=protocol, service_name="spans-wire", log_output="none")
        from infersight._state import get_runtime

        rt = get_runtime()
        probe = rt.span_tracer.start_span("probe")
        probe.end()
        assert isinstance(rt.span_tracer, FastTracer) and isinstance(probe, LiteSpan)
        assert callable(getattr(rt.span_switch.inner, "export_encoded", None))
        if protocol == "grpc":  # encoded requests go out as bytes, not parsed back into a message
            assert isinstance(rt.span_switch.inner._client, _otlp_exporters._BytesOrMessage)
        app_tracer = trace.get_tracer("app")

        @infersight.monitor(model=model_name, version="2")
        def predict(row):
            with app_tracer.start_as_current_span("feature lookup"):  # application code, SDK span
                return 0.5

        with app_tracer.start_as_current_span("request"):
            predict({"x": 1.0})
        assert infersight.flush()
        spans = {s.name: s for _, s in sink.spans()}
        root, monitored, inner = spans["request"], spans[f"predict {model_name}"], spans["feature lookup"]
        assert monitored.parent_span_id == root.span_id and inner.parent_span_id == monitored.span_id
        assert root.trace_id == monitored.trace_id == inner.trace_id
        a = attrs(monitored.attributes)
        assert (a["ml.model.name"], a["ml.model.version"], a["ml.batch.size"]) == (model_name, "2", 1)
        scopes = {ss.scope.name for m in sink.traces for rs in m.resource_spans for ss in rs.scope_spans}
        assert scopes == {"app", "infersight"}
    infersight.configure(exporter="none", log_output="none")


def test_negative_zero_keeps_its_sign_after_positive_zero_was_encoded():
    _, tracer, _ = _tracer()
    spans = []
    for value in (0.0, -0.0):
        span = tracer.start_span("x", attributes={"v": value})
        span.end()
        spans.append(span)
    decoded = ExportTraceServiceRequest.FromString(
        _otlp_encode.encode_request(RESOURCE, ("infersight", "0.1.0", None, None), spans)
    )
    values = [s.attributes[0].value.double_value for s in decoded.resource_spans[0].scope_spans[0].spans]
    assert [str(v) for v in values] == ["0.0", "-0.0"]


def test_the_request_paths_context_helpers_agree_with_the_otel_api(caplog):
    import contextvars

    from opentelemetry.trace.propagation import _SPAN_KEY

    from infersight import request_context as rc

    assert rc.current_span() is trace.get_current_span() is trace.INVALID_SPAN
    token = otel_context.attach(otel_context.set_value(_SPAN_KEY, "not a span"))
    try:  # a value that is not a span reads as no span, as the API has it
        assert rc.current_span() is trace.get_current_span() is trace.INVALID_SPAN
        _, tracer, _ = _tracer()
        root = tracer.start_span("x")
        assert root.parent is None and root.get_span_context().is_valid
    finally:
        otel_context.detach(token)

    span = NonRecordingSpan(SpanContext(1, 2, False))
    base = otel_context.set_value("tenant", "a")
    assert rc.span_context(span, base) == trace.set_span_in_context(span, base)
    outer = otel_context.attach(base)
    try:
        inner = rc.enter_span(span)  # the current context's other values stay
        assert rc.current_span() is trace.get_current_span() is span
        assert otel_context.get_value("tenant") == "a"
        rc.leave(inner, None)
        assert trace.get_current_span() is trace.INVALID_SPAN and otel_context.get_value("tenant") == "a"
    finally:
        otel_context.detach(outer)

    # A token made in another context cannot be reset here: OTel's detach reports it, nothing raises.
    elsewhere = contextvars.copy_context().run(rc.attach, rc.span_context(span))
    rc.leave(elsewhere, None)
    assert "Failed to detach context" in caplog.text
    assert trace.get_current_span() is trace.INVALID_SPAN
