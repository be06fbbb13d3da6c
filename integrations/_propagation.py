"""Trace context in and out of the middlewares: which headers the global propagator reads
(:class:`Propagation`, recomputed only when the propagator changes), the fast path for a plain
W3C ``traceparent`` (:func:`w3c_parent`), and the context that records nothing, for excluded
paths (:func:`suppressed_context`).

Example:
    >>> w3c_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_remote
    True
"""

from __future__ import annotations

import random
import re
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

__all__ = ["Propagation", "PROPAGATION", "w3c_parent", "suppressed_context"]


class Propagation:
    """The global propagator and the header names it reads, recomputed only when the global
    propagator is replaced: a composite propagator builds its ``fields`` set on every access.

    Adapters use the names to notice, while scanning headers they scan anyway, whether a request
    carries trace context at all; most requests to a model server start a trace, and extracting
    from a request without the headers costs microseconds to find nothing. ``w3c`` says the
    propagator is OTel's default (W3C trace context, then W3C baggage): a request whose only
    propagation header is a plain ``traceparent`` is then read by :func:`w3c_parent`."""

    __slots__ = ("_propagator", "names", "w3c")

    def __init__(self) -> None:
        self._propagator: Any = None
        self.names: frozenset[str] = frozenset()
        self.w3c = False

    def current(self) -> Any:
        propagator = propagate.get_global_textmap()
        if propagator is not self._propagator:
            self.names = frozenset(n.lower() for n in propagator.fields)
            self.w3c = _is_default_w3c(propagator)
            self._propagator = propagator
        return propagator


def _is_default_w3c(propagator: Any) -> bool:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if type(propagator) is TraceContextTextMapPropagator:
        return True
    inner = getattr(propagator, "_propagators", None)
    return (
        type(propagator) is CompositePropagator
        and inner is not None
        and [type(p) for p in inner]
        in ([TraceContextTextMapPropagator, W3CBaggagePropagator], [TraceContextTextMapPropagator])
    )


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")


def w3c_parent(traceparent: str) -> SpanContext | None:
    """The caller's span context from a canonical version-00 ``traceparent``, the same one the
    W3C propagator reads from it; ``None`` for any other form (the propagator then decides:
    whitespace, other versions, zero IDs, malformed values).

    >>> ctx = w3c_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    >>> hex(ctx.span_id), ctx.is_remote, ctx.trace_flags.sampled
    ('0xb7ad6b7169203331', True, True)
    >>> w3c_parent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01") is None
    True
    """
    m = _TRACEPARENT.match(traceparent)
    if m is None:
        return None
    trace_id, span_id = int(m.group(1), 16), int(m.group(2), 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, True, TraceFlags(int(m.group(3), 16)), None)


PROPAGATION = Propagation()


def suppressed_context() -> Any:
    """A context under which nothing records: for excluded paths, so not even child spans
    (``@monitor``, client instrumentations) appear. A non-sampled parent makes parent-based
    samplers drop children; the suppression key makes OTel instrumentations skip."""
    ctx = otel_context.set_value("suppress_instrumentation", True)
    parent = NonRecordingSpan(
        SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
    return trace.set_span_in_context(parent, ctx)
