"""Every monitored call's prediction, shipped compactly so late labels can be joined to all calls.

Payload logs (``ml.prediction``) are sampled (1% by default), so a join of ground truth with
them sees about 1% of the traffic. An *outcome* is what quality needs and nothing more: request
ID, time, model, version, trace and span ID (packed in one int), and the prediction (a label, a score, or per-row
values of a batch, size-capped). The request path appends one tuple to a bounded buffer and
encodes nothing (unless the export thread lags so far that the buffer reaches twice
:data:`SHIP_AT`: the call that finds it there encodes the oldest :data:`CHUNK_CALLS`); the
export thread (the metric reader's tick, ``flush()`` and the stop path)
drains the buffer into OTLP log records with event name ``ml.outcomes``: one record per model
version and chunk of calls, its body a columnar JSON document (decoded in one ``json.loads``).
When infersight owns the log pipeline it exports these records itself, a few per request (a
batch log processor would put 512 of them in one request, past gRPC's 4 MiB message limit);
under an application's own logger provider they go through that provider.

When the buffer is full, further calls are counted in ``ml.telemetry.dropped`` with reason
``outcome_buffer_full`` until the next drain. Set ``record_outcomes=False``
(``INFERSIGHT_RECORD_OUTCOMES=false``) to turn outcomes off.

The prediction object is held by reference until the drain and encoded there: a caller that
mutates the returned object in place before the next export changes what is shipped. The
exception is the one-element float array a one-row call usually gets back from ``model.predict``:
the request path has read its number already and keeps that (as a 1-tuple, shipped exactly as
the array would be), not the array.

Example:
    >>> buf = OutcomeBuffer(capacity=2)
    >>> for rid in ("a", "b", "c"):
    ...     buf.add((rid, 1_000, "churn", "3", None, 0.5))
    >>> buf.dropped, [b["request_id"] for b in encode_outcomes(buf.take(), max_bytes=256)]
    (1, [['a', 'b']])
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "OutcomeBuffer",
    "encode_outcomes",
    "compact_prediction",
    "OUTCOMES_EVENT",
    "OUTCOME_FORMAT",
    "OUTCOME_FORMATS",
    "call_predictions",
    "RECORDS_PER_EXPORT",
]

OUTCOMES_EVENT = "ml.outcomes"
# Bumped when the body's layout changes; the processor refuses formats it does not know.
# Format 2 is format 1 plus packed float predictions ("packed", "values"); a body with none
# is written as format 1, which every processor reads.
OUTCOME_FORMAT = 2
OUTCOME_FORMATS = (1, 2)
# Calls per log record: a record stays far below the OTLP receivers' message limits even when
# every prediction is at its size cap, and the batch log processor's queue (2048 records by
# default) holds hundreds of thousands of calls.
CHUNK_CALLS = 512
CHUNK_BYTES = 256 * 1024
SHIP_AT = 4096
# Records per export request when infersight exports them itself: well under gRPC's default
# 4 MiB message limit even at CHUNK_BYTES each.
RECORDS_PER_EXPORT = 8

# (request_id, time_ns, model, version, IDs, prediction); IDs: trace_id << 64 | span_id as one
# int (0: none), or a SpanContext, or None
Outcome = tuple[str, int, str, str, Any, Any]


class OutcomeBuffer:
    """A bounded buffer the request path appends to and the export thread drains.

    ``deque.append`` and ``popleft`` are atomic, so no lock is taken: a call appended while a
    drain runs is either in this drain or the next, never lost. The capacity check may let a
    few calls over the bound under contention; the bound is on memory, not an exact count.
    """

    __slots__ = ("items", "capacity", "dropped", "ship_at", "hard_at", "on_pressure", "encoder", "ready")

    def __init__(self, capacity: int = 100_000, ship_at: int = SHIP_AT) -> None:
        self.items: deque[Outcome] = deque()
        self.capacity = capacity
        self.dropped = 0
        # At this many buffered calls the export thread is woken to ship them early: memory
        # stays at a few MB however long the export interval (the allocator keeps what a
        # bigger peak took).
        self.ship_at = ship_at
        self.on_pressure: Callable[[], None] | None = None
        # When the export thread lags (a busy machine) and the buffer reaches ``hard_at``, the
        # request path encodes the oldest CHUNK_CALLS calls itself (``encoder``, about 0.5 ms)
        # into ``ready``, which the export thread ships first: encoded, a call takes about
        # 140 bytes of JSON in one string instead of five objects (about 320 bytes) the
        # allocator keeps room for after the peak.
        self.hard_at = 2 * ship_at
        self.encoder: Callable[[list[Outcome]], Any] | None = None
        self.ready: deque[Any] = deque()

    def add(self, outcome: Outcome) -> None:
        items = self.items
        n = len(items)
        if n < self.capacity:
            items.append(outcome)
            if n == self.ship_at and self.on_pressure is not None:
                self.on_pressure()
            elif n >= self.hard_at and self.encoder is not None:
                taken = self.take(CHUNK_CALLS)
                try:
                    self.ready.append(self.encoder(taken))
                except BaseException:
                    # put back, oldest first, for the export thread; no more encoding here
                    # (the caller reports the fault once)
                    items.extendleft(reversed(taken))
                    self.encoder = None
                    raise
        else:
            self.dropped += 1

    def take(self, at_most: int | None = None) -> list[Outcome]:
        """Everything buffered now (or the oldest ``at_most``), oldest first."""
        items = self.items
        out = []
        n = len(items) if at_most is None else min(at_most, len(items))
        try:
            for _ in range(n):
                out.append(items.popleft())
        except IndexError:  # another drain took the rest
            pass
        return out

    def take_dropped(self) -> int:
        n, self.dropped = self.dropped, 0
        return n

    def clear(self) -> None:
        self.items.clear()
        self.ready.clear()
        self.dropped = 0


def compact_prediction(value: Any, max_rows: int) -> tuple[Any, int]:
    """The prediction as plain JSON-able data, batches cut to ``max_rows`` rows, and the row
    count before the cut (1 for a single answer).

    >>> compact_prediction(np.array([[0.2], [0.9], [0.4]]), 2)
    ([0.2, 0.9], 3)
    >>> compact_prediction(np.float32(0.25), 10), compact_prediction("churn", 10)
    ((0.25, 1), ('churn', 1))
    """
    if isinstance(value, str):
        return value[:_MAX_TEXT], 1
    if value is None or isinstance(value, (bool, int, float)):
        return _finite(value), 1
    if isinstance(value, np.generic):
        return _finite(value.item()), 1
    to_numpy = getattr(value, "to_numpy", None)
    if to_numpy is not None and not isinstance(value, np.ndarray):
        try:
            value = to_numpy()
        except Exception:  # noqa: BLE001 - an odd object falls through to its repr below
            pass
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _finite(value.item()), 1
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        n = int(value.shape[0])
        return [_finite_deep(v) for v in value[:max_rows].tolist()], n
    if isinstance(value, (list, tuple)):
        return [_finite_deep(_plain(v)) for v in value[:max_rows]], len(value)
    if isinstance(value, dict):
        return {str(k): _finite_deep(_plain(v)) for k, v in list(value.items())[:64]}, 1
    return str(value)[:256], 1


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _finite(v: Any) -> Any:
    # NaN/Inf are not JSON: shipped as null (the processor counts them as missing predictions).
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _finite_deep(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_finite_deep(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _finite_deep(x) for k, x in v.items()}
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    return _finite_deep(_plain(v)) if isinstance(v, (np.generic, np.ndarray)) else str(v)[:256]


def encode_outcomes(
    outcomes: Sequence[Outcome], *, max_bytes: int = 4096, max_rows: int = 1000, redactor: Any = None
) -> Iterator[dict[str, Any]]:
    """Group outcomes by (model, version) and yield one columnar body per chunk of calls
    (at most :data:`CHUNK_CALLS` calls and about :data:`CHUNK_BYTES` of predictions):
    ``{"format", "model", "version", "request_id", "time_ns", "trace_id", "span_id",
    "prediction", "rows", "truncated"}``. A prediction bigger than ``max_bytes`` on the wire is
    replaced by ``null`` and marked in ``truncated`` (its row count stays in ``rows``).

    Float arrays (what ``model.predict`` returns for a batch: one float a row) are not
    written as JSON numbers: their values, as float64, travel packed in the body's
    ``values`` (base64, little-endian, call after call) and ``packed`` says how many each
    call has (``null`` for a call whose prediction is in ``prediction``): 8 bytes a value, at
    most ``max_bytes // 8`` values a call. Writing a float's shortest text costs about
    0.3 µs, twice per value (measured, then written): a 1,000-row batch's answer took 0.4 ms
    of the export thread. A one-row call's number stays a JSON list of one (packing one value
    costs more than its text), cut by the same rule. :func:`call_predictions` reads a body
    back.

    >>> (body,) = encode_outcomes([("a", 5, "m", "1", 0, np.array([0.5, np.nan])), ("b", 6, "m", "1", 0, "yes")])
    >>> body["format"], body["packed"], call_predictions(body)
    (2, [2, None], [[0.5, None], 'yes'])
    """
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o[2], o[3]), []).append(o)
    packed_cap = max_bytes // 8
    for (model, version), calls in groups.items():
        body = _new_body(model, version)
        size = 0
        packed: list[int | None] = []
        parts: list[Any] = []  # the packed calls' values, in call order
        for rid, t, _, _, ctx, pred in calls:
            trace_id, span_id = _ids(ctx)
            count: int | None = None
            if pred is None or type(pred) in _SCALARS:
                # the common case: one label or number, nothing to measure
                value: Any = _finite(pred) if type(pred) is not str else pred[:_MAX_TEXT]
                rows, cut, n = 1, False, 24
            elif type(pred) is tuple and len(pred) == 1 and type(pred[0]) is float:
                # a one-row answer's number (see infersight._monitor): read back as the
                # one-element array it was (cut by the same rule), but written as a JSON
                # list, one float's text being cheaper than packing one value
                v = pred[0]
                rows, cut = 1, packed_cap < 1
                value, n = (None, 4) if cut else ([v if v - v == 0.0 else None], 26)
            elif type(pred) is np.ndarray and pred.dtype in _FLOATS and _one_column(pred):
                rows = pred.shape[0]
                kept = min(rows, max_rows)
                value, cut = None, kept > packed_cap
                if not cut:
                    count, n = kept, (kept * 8 + 2) // 3 * 4
                    if kept:
                        parts.append(pred[:kept].ravel())
                else:
                    n = 4
            else:
                value, rows = compact_prediction(pred, max_rows)
                if redactor is not None and isinstance(value, dict):
                    value = redactor.redact(value)
                cut = False
                try:
                    n = len(json.dumps(value, allow_nan=False))
                except (TypeError, ValueError):
                    n = max_bytes + 1
                if n > max_bytes:
                    value, cut, n = None, True, 4
            body["request_id"].append(rid)
            body["time_ns"].append(t)
            body["trace_id"].append(trace_id)
            body["span_id"].append(span_id)
            body["prediction"].append(value)
            body["rows"].append(rows)
            body["truncated"].append(cut)
            packed.append(count)
            size += n + 100
            if len(body["request_id"]) >= CHUNK_CALLS or size >= CHUNK_BYTES:
                yield _sealed(body, packed, parts)
                body, size, packed, parts = _new_body(model, version), 0, [], []
        if body["request_id"]:
            yield _sealed(body, packed, parts)


def _sealed(body: dict[str, Any], packed: list[int | None], parts: list[Any]) -> dict[str, Any]:
    """The body with its packed values (format 2), or as format 1 when it has none."""
    if any(c is not None for c in packed):
        values = np.concatenate(parts).astype("<f8", copy=False) if parts else np.empty(0, "<f8")
        body["format"] = OUTCOME_FORMAT
        body["packed"] = packed
        body["values"] = base64.b64encode(values.tobytes()).decode("ascii")
    return body


def call_predictions(body: dict[str, Any]) -> list[Any]:
    """Each call's prediction in an ``ml.outcomes`` body, packed values unpacked (a list of
    numbers, NaN and infinities as ``None``); raises ``ValueError`` naming what is wrong with
    a body whose packed columns do not agree.

    >>> call_predictions({"format": 1, "prediction": [1, None]})
    [1, None]
    """
    predictions = body["prediction"]
    if body.get("format") != OUTCOME_FORMAT:
        return list(predictions)
    packed, text = body.get("packed"), body.get("values")
    if not isinstance(packed, list) or len(packed) != len(predictions):
        raise ValueError("column packed is missing or not as long as prediction")
    if not isinstance(text, str):
        raise ValueError("values must be base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"values is not base64 ({exc})") from None
    if any(c is not None and (type(c) is not int or c < 0) for c in packed):
        raise ValueError("packed must hold null or a non-negative whole number per call")
    total = sum(c for c in packed if c is not None)
    if len(raw) != 8 * total:
        raise ValueError(f"values holds {len(raw)} bytes, packed says {total} numbers of 8 bytes")
    values = np.frombuffer(raw, dtype="<f8")
    if total and not np.isfinite(values).all():
        floats: list[Any] = [v if math.isfinite(v) else None for v in values.tolist()]
    else:
        floats = values.tolist()
    out = []
    at = 0
    for pred, c in zip(predictions, packed):
        if c is None:
            out.append(pred)
        else:
            out.append(floats[at : at + c])
            at += c
    return out


_SCALARS = (bool, int, float, str)
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _one_column(a: np.ndarray) -> bool:
    return a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)


_MAX_TEXT = 256


def _new_body(model: str, version: str) -> dict[str, Any]:
    return {
        "format": 1,  # OUTCOME_FORMAT once it holds packed values (see _sealed)
        "model": model,
        "version": version,
        "request_id": [],
        "time_ns": [],
        "trace_id": [],
        "span_id": [],
        "prediction": [],
        "rows": [],
        "truncated": [],
    }


def _ids(ctx: Any) -> tuple[str, str]:
    # The trace and span IDs packed in one int (trace_id << 64 | span_id, 0 for none: what the
    # request path keeps), or a span's context, or None.
    if type(ctx) is int:
        if not ctx:
            return "", ""
        both = format(ctx, "048x")  # one formatting, then its two parts
        return both[:32], both[32:]
    if ctx is None or not ctx.is_valid:
        return "", ""
    return ctx.trace_id.to_bytes(16, "big").hex(), ctx.span_id.to_bytes(8, "big").hex()  # faster than format()
