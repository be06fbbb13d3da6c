"""``ml.outcomes`` log records → one :class:`~infersight.processor.storage.base.Outcome` per call.

The SDK ships every monitored call's prediction (not only the sampled payloads) as a few log
records whose body is a columnar JSON document (see ``infersight._outcomes``)::

    {"format": 1, "model": "churn", "version": "3", "request_id": [...], "time_ns": [...],
     "trace_id": [...], "span_id": [...], "prediction": [...], "rows": [...], "truncated": [...]}

Format 2 adds packed float answers (``"packed"``: values per call or ``null``, ``"values"``:
base64 float64s); screening unpacks them into the ``prediction`` column (NaN as ``null``), so
what is stored is what format 1 gives for the same call.

:func:`outcome_problem` runs at screening time (the receiving thread) and parses the body once,
leaving the parsed document on the record, so folding reads it without a second parse; a body
that is not such a document is rejected with a message naming what is wrong.

Example:
    >>> from infersight.processor.ingest.points import LogPoint
    >>> body = ('{"format":1,"model":"m","version":"1","request_id":["a"],"time_ns":[5],'
    ...         '"trace_id":[""],"span_id":[""],"prediction":[0.5],"rows":[1],"truncated":[false]}')
    >>> rec = LogPoint("ml.outcomes", {}, {"ml.model.name": "m"}, 5, "", "", body)
    >>> outcome_problem(rec) is None, [(o.request_id, o.prediction) for o in outcome_rows(rec)]
    (True, [('a', '0.5')])
"""

from __future__ import annotations

import json
from typing import Any

from infersight._outcomes import OUTCOME_FORMATS, call_predictions
from infersight.processor.ingest.points import LogPoint
from infersight.processor.storage.base import Outcome

__all__ = ["OUTCOMES_EVENT", "outcome_problem", "outcome_rows"]

OUTCOMES_EVENT = "ml.outcomes"
FORMATS = OUTCOME_FORMATS
_COLUMNS = ("request_id", "time_ns", "trace_id", "span_id", "prediction", "rows", "truncated")
_MAX_ID = 256


class _Parsed(dict):  # type: ignore[type-arg]
    """A body already parsed and checked (so folding does not parse it again)."""


def outcome_problem(rec: LogPoint) -> str | None:
    """Why ``rec`` (an ``ml.outcomes`` record) cannot be stored, or ``None``; on success the
    record's body is replaced by the parsed document."""
    if isinstance(rec.body, _Parsed):
        return None
    body = rec.body
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            return f"ml.outcomes log record: body is not JSON ({exc})"
    if not isinstance(body, dict):
        return "ml.outcomes log record: body must be a JSON object with per-call columns"
    if body.get("format") not in FORMATS:
        return (
            f"ml.outcomes log record: format {body.get('format')!r} is not one of {FORMATS}; "
            "upgrade the processor to the SDK's version"
        )
    if not body.get("model") or not isinstance(body.get("model"), str):
        return "ml.outcomes log record: body has no model name"
    columns = [body.get(c) for c in _COLUMNS]
    if not all(isinstance(c, list) for c in columns):
        missing = [c for c, v in zip(_COLUMNS, columns) if not isinstance(v, list)]
        return f"ml.outcomes log record: column(s) {', '.join(missing)} missing or not lists"
    lengths = {len(c) for c in columns if isinstance(c, list)}
    if len(lengths) != 1:
        return f"ml.outcomes log record: columns have different lengths {sorted(lengths)}"
    for rid in body["request_id"]:
        if not isinstance(rid, str) or not rid or len(rid) > _MAX_ID:
            return f"ml.outcomes log record: request ID {str(rid)[:40]!r} must be text of 1 to {_MAX_ID} characters"
    for t in body["time_ns"]:
        if type(t) is not int or t < 0:
            return f"ml.outcomes log record: time_ns {t!r} must be a non-negative whole number of nanoseconds"
    if body.get("format") != 1:
        # packed float answers (see infersight._outcomes) become lists, as format 1 has them
        try:
            body["prediction"] = call_predictions(body)
        except ValueError as exc:
            return f"ml.outcomes log record: {exc}"
    rec.body = _Parsed(body)
    return None


def outcome_rows(rec: LogPoint) -> list[Outcome]:
    """The calls of a screened ``ml.outcomes`` record (empty if it does not pass screening)."""
    if outcome_problem(rec) is not None:
        return []
    b: dict[str, Any] = rec.body
    model, version = str(b["model"]), str(b.get("version", ""))
    return [
        Outcome(
            model,
            version,
            rid,
            t,
            str(trace or ""),
            str(span or ""),
            _text(pred),
            int(rows) if isinstance(rows, int) and rows > 0 else 1,
            bool(cut),
        )
        for rid, t, trace, span, pred, rows, cut in zip(*(b[c] for c in _COLUMNS))
    ]


def _text(pred: Any) -> str | None:
    if pred is None:
        return None
    try:
        return json.dumps(pred, allow_nan=False)
    except ValueError:  # a NaN or Inf the JSON parser let in: no usable prediction
        return None
