"""Evidence for a finding: a few requests from its window that show what moved, so a reader
goes from the alert to the offending request (trace, span and request IDs) in one step.

Best effort, from the logged predictions (a sample of calls, by the SDK's payload rate): for a
numeric feature the rows farthest from the reference median, for a missing-value finding rows
where the feature is missing, for unseen categories rows holding one; otherwise the window's
first logged calls.

Example:
    >>> rows = [{"request_id": "a", "trace_id": "t", "span_id": "s", "inputs": {"x": 1.0}},
    ...         {"request_id": "b", "trace_id": "u", "span_id": "v", "inputs": {"x": 90.0}}]
    >>> pick(rows, "x", "distribution_shift", median=0.0, known=None, n=1)
    ({'trace_id': 'u', 'span_id': 'v', 'request_id': 'b'},)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["pick", "feature_values"]


def feature_values(inputs: Any, feature: str) -> list[Any]:
    """The values of ``feature`` in a logged payload: one row (a dict), rows (a list of dicts)
    or columns (a dict of lists). A row without the feature gives ``None``."""
    if isinstance(inputs, Mapping):
        v = inputs.get(feature)
        if isinstance(v, list):
            return list(v)
        return [v]
    if isinstance(inputs, list):
        return [r.get(feature) if isinstance(r, Mapping) else None for r in inputs]
    return []


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.lower() == "nan")


def _ids(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "trace_id": str(row.get("trace_id") or ""),
        "span_id": str(row.get("span_id") or ""),
        "request_id": str(row["request_id"]),
    }


def pick(
    rows: Sequence[Mapping[str, Any]],
    feature: str | None,
    cause: str | None,
    *,
    median: float | None,
    known: set[str] | None,
    n: int,
) -> tuple[dict[str, str], ...]:
    """Up to ``n`` requests of ``rows`` (from :meth:`Storage.joined`) that drove a finding."""
    if n <= 0 or not rows:
        return ()
    if feature is None:
        return tuple(_ids(r) for r in rows[:n])
    scored: list[tuple[float, int]] = []
    head = (cause or "").split(":", 1)[0]
    for i, r in enumerate(rows):
        vals = feature_values(r.get("inputs"), feature)
        if head in ("missing_rate_jump", "feature_missing"):
            score = float(sum(_missing(v) for v in vals))
        elif head == "unseen_categories" and known is not None:
            score = float(sum(v is not None and str(v) not in known for v in vals))
        else:
            nums = [
                float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ]
            score = max((abs(v - median) for v in nums), default=0.0) if median is not None else float(bool(vals))
        if score > 0:
            scored.append((score, i))
    scored.sort(key=lambda t: (-t[0], t[1]))
    chosen = [rows[i] for _, i in scored[:n]] or list(rows[:n])
    return tuple(_ids(r) for r in chosen)
