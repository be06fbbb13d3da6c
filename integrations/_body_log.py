"""Opt-in body capture (``capture_bodies``): keep a copy of at most ``max_body_bytes`` of each
request and response body as it streams past (:func:`tee`), then log the pair as one
``ml.http.exchange`` event through the structured-log pipeline (redacted and size-capped there),
JSON only. A body over the cap is dropped whole and the event says so: half a JSON document is
no use to anyone.

Example:
    >>> tee(None, False, b'{"a": 1}', 64), tee(bytearray(b"x" * 60), False, b"toolong", 64)
    ((bytearray(b'{"a": 1}'), False), (bytearray(b''), True))
"""

from __future__ import annotations

import json
from typing import Any

from infersight._state import log_pipeline

__all__ = ["tee", "log_bodies"]


def tee(buf: bytearray | None, truncated: bool, chunk: bytes, limit: int) -> tuple[bytearray, bool]:
    """Keep a copy of at most ``limit`` bytes; past it, drop the copy and remember why."""
    if buf is None:
        buf = bytearray()
    if truncated or not chunk:
        return buf, truncated
    if len(buf) + len(chunk) > limit:
        buf.clear()
        return buf, True
    buf += chunk
    return buf, False


def log_bodies(
    settings: Any,
    request_id: str,
    method: str,
    route: str | None,
    status: int | None,
    request: tuple[bytearray | None, bool],
    response: tuple[bytearray | None, bool],
) -> None:
    """Log one exchange's captured bodies, each ``(copy, truncated)``, as one ``ml.http.exchange``
    event under the model ``settings`` name (invalid JSON and truncation are flagged, never
    logged raw)."""
    fields: dict[str, Any] = {
        "ml.request.id": request_id,
        "http.request.method": method,
        "ml.model.name": settings.model or "unknown",
        "ml.model.version": settings.version or "unknown",
    }
    if route:
        fields["http.route"] = route
    if status is not None:
        fields["http.response.status_code"] = status
    truncated = []
    for key, body, cut, part in (
        ("ml.inputs", *request, "request"),
        ("ml.outputs", *response, "response"),
    ):
        if body is None:
            continue
        if cut:
            truncated.append(part)
            fields[key] = None
            continue
        try:
            fields[key] = json.loads(body)
        except ValueError:
            fields[key] = None
            fields[f"ml.http.{part}_body_invalid"] = True
    if truncated:
        fields["ml.http.body_truncated"] = ",".join(truncated)
    log_pipeline().event("ml.http.exchange", fields)
