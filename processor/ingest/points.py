"""The decoded point model: what an OTLP request holds, as plain dataclasses.

Decoding (:mod:`~infersight.processor.ingest.decode`) produces these; every later stage of the
pipeline (screening, cumulative → delta, folding into windows) reads only them, so tests (the
SDK's too) can look at what arrived without starting anything.

Exponential-histogram points carry :class:`infersight.stats.sketch.ExpHistogram` (the SDK's own
OTel-exact sketch), explicit-bucket ones :class:`infersight.stats.windows.ExplicitHistogram`:
the types stored windows hold, so points merge into windows without conversion.

Example:
    >>> d = Decoded()
    >>> d.reject("metric 'x': scale 99 is outside the OTel range -10..20"); d.rejected, d.size
    (1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infersight.processor.ingest.columns import SketchColumns
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import ExplicitHistogram

__all__ = [
    "RequestError",
    "MetricPoint",
    "ExplicitHistogram",
    "SpanPoint",
    "LogPoint",
    "Decoded",
    "bucket_extent",
]


class RequestError(ValueError):
    """The request as a whole cannot be read (answered 400 / INVALID_ARGUMENT)."""


@dataclass
class MetricPoint:
    """One OTLP metric data point. Exactly one of ``value`` (sum, gauge), ``sketch``
    (exponential histogram) and ``histogram`` (explicit buckets) is set, by ``kind``."""

    name: str
    kind: str  # "sum" | "gauge" | "exponential_histogram" | "histogram"
    resource: dict[str, Any]
    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    temporality: str = "delta"  # "delta" | "cumulative" (gauges: "delta")
    monotonic: bool = False
    value: float | None = None
    sketch: ExpHistogram | None = None
    histogram: ExplicitHistogram | None = None
    unit: str = ""


@dataclass
class SpanPoint:
    """One span, reduced to what latency and error SLOs need."""

    name: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    error: bool
    error_type: str | None = None
    # for the request view's waterfall (kept spans): the parent, the span kind (OTLP enum),
    # the status message, and events as (name, time_ns, attributes)
    parent_span_id: str = ""
    kind: int = 0
    status_message: str = ""
    events: tuple[tuple[str, int, dict[str, Any]], ...] = ()

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9


@dataclass
class LogPoint:
    """One log record. ``event_name`` is the record's own field, or its ``event.name`` attribute."""

    event_name: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    time_ns: int
    trace_id: str
    span_id: str
    body: Any = None


@dataclass
class Decoded:
    """What a request held: the usable points, and how many items were rejected and why."""

    points: list[Any] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    columns: list[SketchColumns] = field(default_factory=list)  # delta exp-histogram points, columnar

    @property
    def size(self) -> int:
        """How many points (including those held as columns)."""
        return len(self.points) + sum(len(c) for c in self.columns)

    def reject(self, why: str, n: int = 1) -> None:
        self.rejected += n
        if len(self.errors) < 5:  # enough to explain, bounded so a bad batch cannot bloat replies
            self.errors.append(why)

    @property
    def error_message(self) -> str:
        more = "" if self.rejected <= len(self.errors) else f" (and {self.rejected - len(self.errors)} more)"
        return "; ".join(self.errors) + more


def bucket_extent(s: ExpHistogram) -> tuple[float, float]:
    """Smallest and largest value the buckets can hold (used when min/max were not sent)."""
    lows: list[float] = []
    highs: list[float] = []
    if not s.negative.empty:
        lo_b, hi_b = s.bucket_bounds([s.negative.offset, s.negative.last])
        lows.append(-float(hi_b[1]))
        highs.append(-float(lo_b[0]))
    if s.zero_count:
        lows.append(0.0)
        highs.append(0.0)
    if not s.positive.empty:
        lo_b, hi_b = s.bucket_bounds([s.positive.offset, s.positive.last])
        lows.append(float(lo_b[0]))
        highs.append(float(hi_b[1]))
    return min(lows), max(highs)
