"""``GET /api/models/{model}/quality?start=&end=&slice=&version=&window=``: model quality of a range.

Every call whose prediction time is in ``[start, end)`` (Unix seconds or ISO 8601; default the
last day up to the next base-window boundary), joined with the labels that have arrived:
the task, the metrics, how many pairs were scored, coverage (labelled calls / calls), the
label-delay percentiles (seconds from prediction to label), what was excluded and why, and a
``versions`` entry per version side by side. ``version=`` keeps one version; ``slice=`` keeps
the labelled calls whose feedback attributes match (``region=eu``; several as
``device=ios,region=eu``). ``window=`` (seconds) adds ``windows``: the same per window, oldest
first, so a label source that stopped shows as coverage falling.

Example::

    $ curl '127.0.0.1:8318/api/models/churn/quality?start=2026-01-01T00:00:00Z&window=3600'
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infersight.processor.quality.join import pairs_from_rows, score_pairs
from infersight.processor.quality.settings import QualitySettings

__all__ = ["quality_routes", "quality_body"]

_MAX_WINDOWS = 2000


class _BadRequest(ValueError):
    pass


def _time(value: str | None, name: str, default: float) -> float:
    if value is None or value == "":
        return default
    from infersight.processor.api import BadRequest, parse_time

    try:
        return parse_time(value, name, default)
    except BadRequest as exc:
        raise _BadRequest(str(exc)) from None


def _canonical_slice(text: str) -> tuple[str, tuple[str, ...]]:
    parts = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _BadRequest(f"slice={text!r}: write key=value pairs separated by commas, e.g. slice=region=eu")
        parts.append((key.strip(), value.strip()))
    parts.sort()
    return ",".join(f"{k}={v}" for k, v in parts), tuple(k for k, _ in parts)


def quality_body(
    storage: Any,
    settings: QualitySettings,
    model: str,
    start: int,
    end: int,
    *,
    version: str | None = None,
    slice_: str | None = None,
    window: int | None = None,
) -> dict[str, Any]:
    """The JSON document the endpoint answers (also usable from Python)."""
    mq = settings.for_model(model)
    names: tuple[str, ...] = mq.slices
    key = None
    if slice_:
        key, names = _canonical_slice(slice_)
    rows = storage.outcomes(model, start * 10**9, end * 10**9, version=version)
    res = score_pairs(pairs_from_rows(rows, key, names), mq)
    body: dict[str, Any] = {
        "model": model,
        "start": start,
        "end": end,
        "version": version,
        "slice": key or "",
        **res.to_dict(),
    }
    by_version: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_version.setdefault(r["version"], []).append(r)
    body["versions"] = {
        v: score_pairs(pairs_from_rows(vr, key, names), mq).to_dict() for v, vr in sorted(by_version.items())
    }
    if window:
        first = start - start % window
        n = math.ceil((end - first) / window)
        if n > _MAX_WINDOWS:
            raise _BadRequest(f"window={window} gives {n} windows over the range; the limit is {_MAX_WINDOWS}")
        buckets: list[list[dict[str, Any]]] = [[] for _ in range(max(n, 0))]
        for r in rows:
            i = (r["time_ns"] // 10**9 - first) // window
            if 0 <= i < n:
                buckets[i].append(r)
        body["windows"] = [
            {"start": first + i * window, "size": window, **score_pairs(pairs_from_rows(b, key, names), mq).to_dict()}
            for i, b in enumerate(buckets)
        ]
    return body


def quality_routes(
    storage: Any,
    settings: QualitySettings | None = None,
    *,
    guard: Callable[[Callable[[Request], Response]], Any] | None = None,
    base_window: int | None = None,
) -> list[Route]:
    """The quality endpoint as Starlette routes. ``guard`` wraps a synchronous handler into an
    endpoint (the web app's token check; it must turn :class:`ValueError` subclasses named
    ``BadRequest`` into 400s); without it the handler runs in the thread pool, unguarded.

    >>> [r.path for r in quality_routes(None)]
    ['/api/models/{model}/quality']
    """
    qs = settings or QualitySettings()

    def handler(request: Request) -> Response:
        model = request.path_params["model"]
        try:
            size = base_window or (storage.window_sizes[0] if storage is not None else 60)
            now = time.time()
            end = _time(request.query_params.get("end"), "end", now - now % size + size)
            start = _time(request.query_params.get("start"), "start", end - 86400)
            if end <= start:
                raise _BadRequest(f"end ({end}) must be after start ({start}); the range is [start, end)")
            raw_window = request.query_params.get("window")
            window = None
            if raw_window:
                if not raw_window.isdigit() or int(raw_window) < 1:
                    raise _BadRequest(f"window={raw_window!r} must be a whole number of seconds, e.g. window=3600")
                window = int(raw_window)
            body = quality_body(
                storage,
                qs,
                model,
                math.floor(start),
                math.ceil(end),
                version=request.query_params.get("version") or None,
                slice_=request.query_params.get("slice") or None,
                window=window,
            )
        except _BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if body["calls"] == 0 and not any(m["model"] == model for m in storage.models()):
            return JSONResponse({"error": f"no data for model {model!r}; see /api/models"}, status_code=404)
        return JSONResponse(body)

    if guard is not None:
        endpoint = guard(handler)
    else:

        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(handler, request)

    return [Route("/api/models/{model}/quality", endpoint)]
