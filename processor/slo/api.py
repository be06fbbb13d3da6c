"""``GET /api/slo``: every objective's status, error budget and burn rates, as JSON.

Query: ``model=`` (one model), ``version=`` (``""`` is all versions together, the default
answer lists every scope), ``history=1`` with ``start=``/``end=`` (Unix seconds or ISO 8601)
adds each objective's judgements over the range (SLI, budget, burn rates, alerts firing).

The answer is ``{"slos": [...]}``: one entry per (model, version, objective) judged so far,
as :meth:`~infersight.processor.slo.burn.SLOStatus.to_dict` gives it (``status``, ``sli``,
``error_budget`` with ``remaining`` and ``time_to_exhaustion``, ``burn_rates`` per alert
window, ``windows`` with the good/total counts behind each rate, ``alerts`` with which fire and
which the event guard held back), plus ``pending``: objectives configured for a model that has
stored data but no judgement yet. See docs/slo.md.

Example:
    >>> from infersight.processor.storage import open_storage
    >>> from infersight.processor.slo.settings import parse_slo
    >>> [r.path for r in slo_routes(open_storage("sqlite:///:memory:"), parse_slo({}, "slo"))]
    ['/api/slo']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infersight.processor.slo.evaluator import HISTORY, STATUS
from infersight.processor.slo.settings import SLOSettings

__all__ = ["slo_routes", "slo_body"]

Handler = Callable[[Request], Response]
_MAX_HISTORY = 10_000


def slo_body(
    storage: Any,
    settings: SLOSettings,
    *,
    model: str | None = None,
    version: str | None = None,
    history: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The JSON document ``/api/slo`` answers (also usable from Python)."""
    recs = storage.get_records(STATUS, model=model)
    slos = [r.body for r in recs if version is None or r.body.get("version") == version]
    slos.sort(key=lambda b: (b.get("model", ""), b.get("version", ""), b.get("slo", "")))
    judged = {(b.get("model"), b.get("slo")) for b in slos}
    pending = []
    for m in storage.models():
        name = m["model"]
        if model is not None and name != model:
            continue
        for o in settings.for_model(name):
            if (name, o.name) not in judged:
                pending.append({"model": name, "slo": o.name, "kind": o.kind, "objective": o.objective})
    body: dict[str, Any] = {"slos": slos, "pending": pending}
    if history is not None:
        start, end = history
        hist = storage.get_records(
            HISTORY,
            model=model,
            start=None if start == float("-inf") else start,
            end=None if end == float("inf") else end,
            limit=_MAX_HISTORY,
        )
        body["history"] = [r.body for r in hist if version is None or r.body.get("version") == version]
    return body


def slo_routes(storage: Any, settings: SLOSettings, guard: Callable[[Handler], Any] | None = None) -> list[Route]:
    """The ``/api/slo`` route; ``guard`` wraps the handler (the web app's token check)."""

    def handler(request: Request) -> Response:
        from infersight.processor.api import BadRequest, parse_time

        q = request.query_params
        hist = None
        if q.get("history") not in (None, "", "0", "false"):
            end = parse_time(q.get("end"), "end", float("inf"))
            start = parse_time(q.get("start"), "start", float("-inf"))
            if end <= start:
                raise BadRequest(f"end ({end}) must be after start ({start}); the range is [start, end)")
            hist = (start, end)
        body = slo_body(
            storage,
            settings,
            model=q.get("model") or None,
            version=q.get("version") if "version" in q else None,
            history=hist,
        )
        return JSONResponse(body)

    if guard is None:

        async def endpoint(request: Request) -> Response:
            from infersight.processor.api import BadRequest

            try:
                return await run_in_threadpool(handler, request)
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return [Route("/api/slo", endpoint)]
    return [Route("/api/slo", guard(handler))]
