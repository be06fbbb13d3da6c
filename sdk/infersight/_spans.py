"""infersight's own spans: the server span of the middlewares and the ``predict`` span of
``@monitor``, made and exported at a fraction of the OTel SDK's cost.

A model server makes two spans per request, and the SDK's general machinery costs about 20 µs
to make one (sampler, attribute cleaning under a lock, span processors) and 25 µs more to encode
it for export in Python: together more than the whole web framework spends on a small request.
When infersight owns the tracer provider, :class:`FastTracer` makes these two spans itself:

* a :class:`LiteSpan` is a complete ``opentelemetry.trace.Span`` (current-span lookups, child
  spans from application code, ``set_attribute``, events, exceptions, status all work), with
  the provider's sampler, ID generator and span limits applied exactly as the SDK applies them;
* ending one appends it to :class:`LiteSpanProcessor`'s bounded queue, whose thread encodes
  batches straight to OTLP bytes (:mod:`infersight._otlp_encode`) for infersight's OTLP
  exporters, or converts them to SDK ``ReadableSpan`` objects for any other exporter (console,
  in-memory, a custom one). The exported data is the same either way.

Spans from application code keep going through the SDK (its ``BatchSpanProcessor`` on the same
provider and exporter). When the application owns the provider, or has added span processors of
its own to ours (they must see every span), infersight's spans go through the SDK as well.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> provider = TracerProvider()
    >>> processor = LiteSpanProcessor(None)
    >>> provider.add_span_processor(processor)
    >>> tracer = FastTracer(provider, processor, "demo", "1.0", expected=1)
    >>> span = tracer.start_span("work", attributes={"k": 1})
    >>> span.is_recording(), span.attributes["k"]
    (True, 1)
    >>> span.end(); span.is_recording()
    False
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

from infersight._otlp_encode import encode_request, take_invalid_count
from infersight.request_context import _otel_var

_untrack: Callable[..., None] | None
_track: Callable[..., None] | None
try:
    from infersight._speedups import track as _track
    from infersight._speedups import untrack as _untrack
except ImportError:  # built without the C extension: the collector keeps seeing spans
    _untrack = _track = None

__all__ = ["FastTracer", "LiteSpan", "LiteSpanProcessor"]

_log = logging.getLogger("infersight")
_RANDOM = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_FLAGS = [TraceFlags(i) for i in range(256)]  # made once: TraceFlags(x) costs a call per span
_get_current_span = trace.get_current_span
_DEFAULT_TRACE_STATE = DEFAULT_TRACE_STATE
_TRACE_ID_LIMIT = (1 << 64) - 1  # TraceIdRatioBased compares the lower 64 bits of the trace ID
_tuple_new = tuple.__new__
_EMPTY: dict[str, Any] = {}
_time_ns = time.time_ns
_getrandbits = random.getrandbits


def _span_context(trace_id: int, span_id: int, flags: TraceFlags, trace_state: Any, valid_ids: bool) -> SpanContext:
    """``SpanContext(trace_id, span_id, False, flags, trace_state)``; IDs known to be valid
    (ours: non-zero, in range) skip its Python ``__new__`` and build the tuple it would build."""
    if valid_ids:
        return _tuple_new(SpanContext, (trace_id, span_id, False, flags, trace_state, True))  # type: ignore[no-any-return]
    return SpanContext(trace_id, span_id, False, flags, trace_state)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        _log.warning("infersight: %s=%r is not a whole number; using %d", name, raw, default)
        return default
    return value if value > 0 else default


def _clean(value: Any, max_length: int | None) -> Any:
    """An attribute value as OTel accepts it (str, bool, int, float or a homogeneous sequence of
    one of them), strings cut to ``max_length``; any other single value with a ``__str__`` of
    its own (a numpy integer, a Decimal) as its text, as the SDK's attribute cleaning makes it;
    ``None`` for anything else. Integers are kept whatever their size, as in the SDK: one
    outside signed 64 bits is left out when the span is encoded."""
    t = type(value)
    if t is str:
        return value if max_length is None else value[:max_length]
    if t is bool or t is int or t is float:
        return value
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value) if max_length is None else str(value)[:max_length]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        kinds = {type(v) for v in value if v is not None}
        if len(kinds) <= 1 and kinds <= {str, bool, int, float}:
            if kinds == {str} and max_length is not None:
                return tuple(None if v is None else v[:max_length] for v in value)
            return tuple(value)
        return None
    if (
        value is not None
        and not isinstance(value, (bytes, bytearray, Mapping))
        and (t.__str__ is not object.__str__ or t.__repr__ is not object.__repr__)
    ):
        text = str(value)
        return text if max_length is None else text[:max_length]
    return None


def _cleaned(attributes: Attributes, limit: int, max_length: int | None) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    dropped = 0
    for key, value in (attributes or {}).items():
        v = _clean(value, max_length)
        if v is None or not isinstance(key, str) or not key:
            _log.debug("infersight: attribute %r with value of type %s not recorded", key, type(value).__name__)
            continue
        if len(out) >= limit and key not in out:
            dropped += 1
            continue
        out[key] = v
    return out, dropped


class LiteSpan(trace.Span):
    """A recording span that, once ended, is exported by :class:`LiteSpanProcessor`.

    Exposes the fields of an SDK ``ReadableSpan`` the encoder and converter need (``name``,
    ``context``, ``parent``, ``kind``, ``start_time``, ``end_time``, ``attributes``,
    ``events``, ``links``, status). Like the SDK's span it ignores changes once ended."""

    __slots__ = (
        "name",
        "context",
        "parent",
        "kind",
        "start_time",
        "end_time",
        "attributes",
        "events",
        "links",
        "status_code",
        "status_message",
        "dropped_attributes",
        "dropped_events",
        "_tracer",
        "_lock",
    )

    def __init__(
        self,
        tracer: FastTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.start_time = start_time
        self.end_time: int | None = None
        self.events: list[tuple[str, dict[str, Any], int, int]] | None = None
        self.links: list[tuple[SpanContext, dict[str, Any], int]] | None = None
        self.status_code = 0
        self.status_message: str | None = None
        self.dropped_attributes = attributes.dropped if type(attributes) is _LimitedAttributes else 0
        self.dropped_events = 0
        if _untrack is not None:
            # Its context and attributes hold only strings, numbers and flat tuples of those (a
            # dict tracks itself again when it takes a container): never part of a cycle.
            _untrack(context, attributes)

    # -- the opentelemetry.trace.Span interface ------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self.end_time is not None:
            return
        v = _clean(value, self._tracer.max_attribute_length)
        if v is None or not isinstance(key, str) or not key:
            _log.debug("infersight: attribute %r with value of type %s not recorded", key, type(value).__name__)
            return
        attrs = self.attributes
        if key not in attrs and len(attrs) >= self._tracer.max_attributes:
            self.dropped_attributes += 1
            return
        attrs[key] = v

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_trusted(self, attributes: Mapping[str, Any]) -> None:
        """:meth:`set_attributes` for infersight's own values (str, int, bool, float, already
        clean): one update when they fit the span limits, else attribute by attribute."""
        if self.end_time is not None:
            return
        attrs = self.attributes
        tracer = self._tracer
        if tracer.max_attribute_length is None and len(attrs) + len(attributes) <= tracer.max_attributes:
            attrs.update(attributes)
        else:
            self.set_attributes(attributes)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self.end_time is not None:
            return
        tracer = self._tracer
        if self.events is None:
            self.events = []
        if len(self.events) >= tracer.max_events:
            self.dropped_events += 1
            return
        attrs, dropped = _cleaned(attributes, tracer.max_event_attributes, tracer.max_attribute_length)
        self.events.append((name, attrs, _time_ns() if timestamp is None else timestamp, dropped))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self.end_time is not None or context is None or not context.is_valid:
            return
        tracer = self._tracer
        if self.links is None:
            self.links = []
        if len(self.links) >= tracer.max_links:
            return
        attrs, dropped = _cleaned(attributes, tracer.max_link_attributes, tracer.max_attribute_length)
        self.links.append((context, attrs, dropped))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None or self.status_code == StatusCode.OK.value:
            return  # OK is final, as in the SDK
        if isinstance(status, Status):
            code, message = status.status_code, status.description
        else:
            code, message = status, description
        if code is StatusCode.UNSET:
            return
        self.status_code = code.value
        self.status_message = message if code is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The ``exception`` event with the attributes the SDK gives it."""
        if self.end_time is not None:
            return
        cls = type(exception)
        module = cls.__module__
        attrs: dict[str, Any] = {
            "exception.type": f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(cls, exception, exception.__traceback__)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = _time_ns() if end_time is None else end_time
        # LiteSpanProcessor.push, inlined: the one call every span makes.
        processor = self._tracer.processor
        queue = processor._queue  # noqa: SLF001 - same module
        n = len(queue)
        if n >= processor.max_queue or processor._stopped:  # noqa: SLF001
            processor.dropped()
            return
        if _untrack is not None:
            # Waiting for export (up to the schedule delay), spans would be promoted to the older
            # generations and walked by their collections; out of the collector's view until the
            # export thread takes them (and puts them back, see _drain), they are not. The span
            # stays in view while it records: it has a __dict__ (``trace.Span`` has no
            # __slots__), so an application can hang anything on it, cycles included. Untracked
            # before it is queued, so the export thread never takes it before this line.
            _untrack(self)
        queue.append(self)
        if n + 1 == processor.batch:
            processor._wake.set()  # noqa: SLF001

    # -- conversion ---------------------------------------------------------------------------

    def to_readable(self, resource: Any, scope: InstrumentationScope) -> ReadableSpan:
        """The same span as an SDK ``ReadableSpan`` (for exporters that take those), dropped
        counts included."""
        status = (
            Status(StatusCode(self.status_code), self.status_message) if self.status_code else Status(StatusCode.UNSET)
        )
        attributes = BoundedAttributes(None, self.attributes, immutable=True)
        attributes.dropped = self.dropped_attributes
        events: BoundedList = BoundedList(None)
        events.extend(
            [Event(name, _with_dropped(attrs, dropped), ts) for name, attrs, ts, dropped in self.events or ()]
        )
        events.dropped = self.dropped_events
        links = [Link(ctx, _with_dropped(attrs, dropped)) for ctx, attrs, dropped in self.links or ()]
        return ReadableSpan(
            self.name,
            context=self.context,
            parent=self.parent,
            resource=resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=self.kind,
            status=status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=scope,
        )


def _with_dropped(attrs: dict[str, Any], dropped: int) -> BoundedAttributes:
    bounded = BoundedAttributes(None, attrs, immutable=True)
    bounded.dropped = dropped
    return bounded


class FastTracer:
    """Starts :class:`LiteSpan` objects on ``provider`` while that provider exports only through
    infersight (``expected`` span processors, ours included); otherwise hands the call to the
    SDK tracer, so a processor the application adds later sees infersight's spans too.

    ``start_span`` takes ownership of the ``attributes`` dict it is given (the callers build a
    fresh one per span) and trusts its values: they are infersight's own, already clean."""

    def __init__(self, provider: Any, processor: LiteSpanProcessor, name: str, version: str, expected: int = 2) -> None:
        self.provider = provider
        self.processor = processor
        self.scope = InstrumentationScope(name, version)
        self.sdk_tracer = provider.get_tracer(name, version)
        self._expected = expected
        active = getattr(provider, "_active_span_processor", None)
        self._processors_owner = active if hasattr(active, "_span_processors") else None
        limits = getattr(provider, "_span_limits", None)
        self.max_attributes = getattr(limits, "max_span_attributes", None) or 128
        self.max_events = getattr(limits, "max_events", None) or 128
        self.max_links = getattr(limits, "max_links", None) or 128
        self.max_event_attributes = getattr(limits, "max_event_attributes", None) or 128
        self.max_link_attributes = getattr(limits, "max_link_attributes", None) or 128
        self.max_attribute_length: int | None = getattr(limits, "max_span_attribute_length", None)
        processor.scope = self.scope
        processor.provider = provider

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> trace.Span:
        """A span named ``name``, child of the span current in ``context`` (or of the current
        context), sampled by the provider's sampler. Not made current: the caller attaches it."""
        owner = self._processors_owner
        if owner is None or len(owner._span_processors) != self._expected:  # noqa: SLF001
            return self.sdk_tracer.start_span(name, context=context, kind=kind, attributes=attributes)
        provider = self.provider
        id_gen = provider.id_generator
        plain_ids = type(id_gen) is RandomIdGenerator
        # The parent: read straight from the context when it is one of ours (a predict span under
        # the middleware's server span) or absent, else through the API (which vets the value).
        current = (_otel_var.get() if context is None and _otel_var is not None else context or _EMPTY).get(_SPAN_KEY)
        parent: SpanContext | None
        if type(current) is LiteSpan:
            parent = current.context
        elif current is None:
            parent = None
        else:
            parent = _get_current_span(context).get_span_context()
            if not parent.is_valid:
                parent = None
        if parent is not None:
            trace_id = parent[0]  # SpanContext is a tuple: trace_id, span_id, remote, flags, state, valid
            random_flag = parent[3] & _RANDOM
        else:
            trace_id = (_getrandbits(128) or 1) if plain_ids else id_gen.generate_trace_id()
            random_flag = _RANDOM if plain_ids or id_gen.is_trace_id_random() else 0
        span_id = (_getrandbits(64) or 1) if plain_ids else id_gen.generate_span_id()
        sampler = provider.sampler
        if getattr(sampler, "parent_based", False):
            # infersight's ParentBased(TraceIdRatioBased), answered inline (no SamplingResult):
            # follow the parent's decision, else the trace-ID ratio rule.
            if parent is None:
                sampled = 1 if trace_id & _TRACE_ID_LIMIT < sampler.root_bound else 0
                trace_state = _DEFAULT_TRACE_STATE
            else:
                sampled = parent[3] & 1
                trace_state = parent[4]
        else:
            result = sampler.should_sample(context, trace_id, name, kind, attributes, None)
            sampled = 1 if result.decision.is_sampled() else 0
            trace_state = result.trace_state if result.trace_state is not None else _DEFAULT_TRACE_STATE
            if result.attributes:
                attributes = {**(attributes or {}), **result.attributes}
        ctx = _span_context(trace_id, span_id, _FLAGS[sampled | random_flag], trace_state, plain_ids)
        if not sampled:  # DROP, or RECORD_ONLY (not kept for infersight's own spans, as before)
            return NonRecordingSpan(ctx)
        if attributes is None or self.max_attribute_length is not None or len(attributes) > self.max_attributes:
            attributes = self._limited(attributes)
        return LiteSpan(self, name, ctx, parent, kind, attributes, _time_ns())

    def _limited(self, attributes: dict[str, Any] | None) -> dict[str, Any]:
        """The start attributes within the span limits (as given when they are, the usual case);
        what the limits cut is counted by the span, as the SDK does."""
        attrs = attributes if attributes is not None else {}
        if self.max_attribute_length is None and len(attrs) <= self.max_attributes:
            return attrs
        return _LimitedAttributes(*_cleaned(attrs, self.max_attributes, self.max_attribute_length))


class _LimitedAttributes(dict):  # type: ignore[type-arg]
    """Start attributes that lost some to the span limits; the span takes the count over."""

    def __init__(self, items: dict[str, Any], dropped: int) -> None:
        super().__init__(items)
        self.dropped = dropped


class LiteSpanProcessor(SpanProcessor):
    """Bounded queue and export thread for :class:`LiteSpan` objects, registered on the
    provider beside the SDK's batch processor so the provider's ``force_flush`` and
    ``shutdown`` reach it. SDK spans pass by (``on_end`` ignores them).

    Honours the batch processor's variables: ``OTEL_BSP_MAX_QUEUE_SIZE`` (2048),
    ``OTEL_BSP_SCHEDULE_DELAY`` (5000 ms), ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (512). A span that
    finds the queue full is dropped and counted in ``ml.telemetry.dropped`` (reason
    ``span_queue_full``), with no log line per span."""

    def __init__(self, exporter: Any, on_drop: Any = None) -> None:
        self.exporter = exporter  # the runtime's switch (or any SpanExporter)
        self.on_drop = on_drop
        self.provider: Any = None
        self.scope = InstrumentationScope("infersight")
        self.max_queue = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.delay = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000.0
        self.batch = min(_env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self.max_queue)
        self._start()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        left = getattr(self, "_queue", None)  # after a fork: the parent's queue, exported there
        if left and _track is not None:
            _track(*left)
        self._queue: collections.deque[LiteSpan] = collections.deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="InferSightSpanExporter", daemon=True)
        self._thread.start()

    # -- request path (LiteSpan.end queues spans itself) ---------------------------------------

    def dropped(self) -> None:
        """Count a span turned away: the queue was full, or the processor shut down."""
        if self.on_drop is not None:
            self.on_drop("span_queue_full" if not self._stopped else "span_after_shutdown")

    # -- export thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped:
            woken = self._wake.wait(self.delay)
            self._wake.clear()
            try:
                # Woken by a full batch: export full batches only, so a steady stream of requests
                # is sent in batches of ``batch``, never span by span. On the timer: everything.
                self._drain(full_only=woken and not self._stopped)
            except Exception:  # noqa: BLE001 - the export thread must survive anything
                if self.on_drop is not None:
                    self.on_drop("span_export")

    def _drain(self, full_only: bool = False) -> bool:
        """Export what is queued now (spans queued meanwhile wait for the next round)."""
        ok = True
        queue = self._queue
        with self._export_lock:
            pending = len(queue)
            while pending > 0 and (pending >= self.batch or not full_only):
                batch = []
                try:
                    for _ in range(min(pending, self.batch)):
                        batch.append(queue.popleft())
                except IndexError:
                    pass
                if not batch:
                    break
                if _track is not None:
                    _track(*batch)  # back in the collector's view: a cycle through one is freed
                pending -= len(batch)
                ok = self._export(batch) and ok
        return ok

    def _export(self, batch: list[LiteSpan]) -> bool:
        exporter = self.exporter
        inner = getattr(exporter, "inner", exporter)  # the runtime's switch: its current exporter
        if inner is None:
            return True
        provider = self.provider
        resource = provider.resource if provider is not None else None
        try:
            send = getattr(inner, "export_encoded", None)
            if send is not None and resource is not None:
                scope = self.scope
                payload = encode_request(resource, (scope.name, scope.version, None, scope.schema_url), batch)
                left_out = take_invalid_count()
                if left_out and self.on_drop is not None:
                    for _ in range(left_out):
                        self.on_drop("span_attribute_invalid")
                ok = bool(send(payload, len(batch)))
            else:
                spans = [s.to_readable(resource, self.scope) for s in batch]
                result = inner.export(spans)
                ok = getattr(result, "name", "SUCCESS") == "SUCCESS"
        except Exception:  # noqa: BLE001
            ok = False
        if not ok and self.on_drop is not None:
            self.on_drop("span_export_failed")
        return ok

    # -- SpanProcessor ------------------------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued, on the calling thread."""
        return self._drain()

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._drain()
        self._stopped = True
        self._wake.set()
