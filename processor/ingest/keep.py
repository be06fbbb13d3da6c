"""Which spans and log records the processor keeps for the request view (``/requests/{id}``).

The SDK sends every sampled span; the processor folds them into windows (latency, errors) and,
through this module, also keeps the requests themselves for a while, so the way from an alert
to the offending request works where no Jaeger runs. What is kept:

- ``keep: all`` (the default): every span and log record for ``recent`` (15 minutes), and the
  traces that are *flagged* for ``retention``: a span with an error status, ``ml.schema.valid``
  false or a schema-violation event, and every trace whose payload the SDK logged (its
  ``ml.prediction`` record: sampled calls, and the errors, violations and outliers the SDK
  always logs; the evidence of findings is picked from those). A flag on one item keeps the
  whole trace.
- ``keep: flagged``: flagged items only (nothing unflagged is written).
- ``keep: off``: nothing.

Payloads stay in the predictions table (as redacted by the SDK): a kept ``ml.prediction``
record holds its other attributes, not the inputs and outputs a second time. Outcome batches
and feedback are stored elsewhere and not kept here.

Example:
    >>> from infersight.processor.ingest.points import SpanPoint
    >>> s = SpanPoint("predict churn", {}, {"ml.model.name": "churn", "ml.request.id": "r1"},
    ...     "ab" * 16, "cd" * 8, 0, 5_000_000, True, "ValueError")
    >>> [(i.kind, i.request_id, i.flagged) for i in keep_items([s], [], "all")]
    [('span', 'r1', True)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infersight.processor.ingest.outcomes import OUTCOMES_EVENT
from infersight.processor.ingest.points import LogPoint, SpanPoint
from infersight.processor.storage.base import TraceItem

__all__ = ["keep_items", "KEEP_MODES", "span_flagged"]

KEEP_MODES = ("all", "flagged", "off")
_NOT_KEPT_LOGS = (OUTCOMES_EVENT, "ml.feedback")
_PAYLOAD_KEYS = ("ml.inputs", "ml.outputs")


def span_flagged(s: SpanPoint) -> bool:
    """An error, an invalid schema, or a schema-violation event."""
    if s.error or s.attributes.get("ml.schema.valid") is False:
        return True
    return any(e[0] == "ml.schema.violation" for e in s.events)


def _model(attrs: dict[str, Any], resource: dict[str, Any]) -> str:
    return str(attrs.get("ml.model.name", resource.get("ml.model.name", "")) or "")


def keep_items(spans: Sequence[SpanPoint], logs: Sequence[LogPoint], mode: str) -> list[TraceItem]:
    """The :class:`TraceItem` rows one batch adds (see the module docstring for ``mode``)."""
    if mode == "off":
        return []
    only_flagged = mode == "flagged"
    out: list[TraceItem] = []
    for s in spans:
        flagged = span_flagged(s)
        if only_flagged and not flagged:
            continue
        body = {
            "name": s.name,
            "parent_span_id": s.parent_span_id,
            "kind": s.kind,
            "start_ns": s.start_ns,
            "end_ns": s.end_ns,
            "error": s.error,
            "error_type": s.error_type,
            "status_message": s.status_message,
            "service": s.resource.get("service.name"),
            "attributes": s.attributes,
            "events": [{"name": n, "time_ns": t, "attributes": a} for n, t, a in s.events],
        }
        out.append(
            TraceItem(
                s.trace_id,
                s.span_id,
                "span",
                _model(s.attributes, s.resource),
                str(s.attributes.get("ml.request.id", "")),
                s.start_ns,
                flagged,
                body,
            )
        )
    for i, rec in enumerate(logs):
        if not rec.trace_id or rec.event_name in _NOT_KEPT_LOGS:
            continue
        payload = rec.event_name == "ml.prediction"
        if only_flagged and not payload:
            continue
        attrs = {k: v for k, v in rec.attributes.items() if k not in _PAYLOAD_KEYS} if payload else rec.attributes
        out.append(
            TraceItem(
                rec.trace_id,
                f"log:{rec.span_id}:{rec.time_ns}:{i}",
                "log",
                _model(rec.attributes, rec.resource),
                str(rec.attributes.get("ml.request.id", "")),
                rec.time_ns,
                payload,
                {"event_name": rec.event_name, "span_id": rec.span_id, "attributes": attrs, "body": rec.body},
            )
        )
    return out
