"""``GET /api/alerts``: incidents with their history, as JSON.

Query: ``state=open|resolved|all`` (default ``all``), ``model=``, ``start=``/``end=`` (Unix
seconds or ISO 8601, window time: incidents active in ``[start, end)``). The answer is
``{"incidents": [...], "stats": {...}}``, newest first; each incident as in a webhook payload
plus its ``history`` (open, notified, changed, revised, suppressed, reopened, resolve).

The processor's web app mounts these routes behind its token check: pass its wrapper as
``guard`` (a function from a sync ``handler(request) -> Response`` to an endpoint).

Example:
    >>> from infersight.processor.storage import open_storage
    >>> from infersight.processor.alerts import AlertManager, parse_alerts
    >>> mgr = AlertManager(parse_alerts({}, "alerts"), open_storage("sqlite:///:memory:"))
    >>> [r.path for r in alert_routes(mgr)]
    ['/api/alerts']
    >>> mgr.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infersight.processor.alerts.manager import AlertManager

__all__ = ["alert_routes"]

Handler = Callable[[Request], Response]


def alert_routes(manager: AlertManager, guard: Callable[[Handler], Any] | None = None) -> list[Route]:
    """Routes serving ``manager``'s incidents; ``guard`` wraps the handler (token check)."""

    def alerts(request: Request) -> Response:
        # imported here: infersight.processor.api may import this module at its top
        from infersight.processor.api import BadRequest, parse_time

        q = request.query_params
        state = q.get("state") or "all"
        if state not in ("open", "resolved", "all"):
            raise BadRequest(f"state={state!r} is not one of open, resolved, all; write e.g. state=open")
        start = parse_time(q.get("start"), "start", float("-inf"))
        end = parse_time(q.get("end"), "end", float("inf"))
        if end <= start:
            raise BadRequest(f"end ({end}) must be after start ({start}); the range is [start, end)")
        incidents = manager.incidents(
            state,
            model=q.get("model") or None,
            start=None if start == float("-inf") else start,
            end=None if end == float("inf") else end,
        )
        return JSONResponse({"incidents": incidents, "stats": manager.stats()})

    if guard is None:

        async def endpoint(request: Request) -> Response:
            from infersight.processor.api import BadRequest

            try:
                return await run_in_threadpool(alerts, request)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return [Route("/api/alerts", endpoint)]
    return [Route("/api/alerts", guard(alerts))]
