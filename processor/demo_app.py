"""The model server of ``infersight demo``: FastAPI, infersight's middleware, ``@monitor``.

Kept apart from :mod:`infersight.processor.demo` because FastAPI reads the route's type hints
at run time (this module has no ``from __future__ import annotations``), and so that the demo's
command line loads FastAPI only when it runs.

    >>> app = make_app([0.0])
    >>> sorted(r.path for r in app.routes if r.path in ("/predict", "/healthz"))
    ['/healthz', '/predict']
"""

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

import infersight
from infersight.integrations.fastapi import instrument_app

__all__ = ["make_app"]


def make_app(
    delay: list, reference: Any = None, *, score: Any = None, model: str = "churn", version: str = "1"
) -> FastAPI:
    """The churn model behind ``POST /predict`` (one customer as a JSON object; the answer is
    ``{"churn": 0 or 1, "request_id": ...}``). ``delay[0]`` seconds are added to every call:
    the demo's latency regression. Inputs are checked against ``reference``'s schema (a
    profile or its path): violations are recorded, the call goes on. ``score(row)`` is the
    model's churn probability (default: 0.5 for everyone)."""
    probability = score or (lambda row: 0.5)

    app = FastAPI(title="churn model (infersight demo)")
    instrument_app(app, excluded_urls="^/healthz$")

    @infersight.monitor(model=model, version=version, reference=reference)
    def predict(row: dict) -> int:
        if delay[0]:
            time.sleep(delay[0])
        return int(probability(row) > 0.5)

    @app.post("/predict")
    async def predict_route(request: Request) -> JSONResponse:
        try:
            body: Any = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "send one customer as a JSON object"}, status_code=400)
        label = await run_in_threadpool(predict, body)
        return JSONResponse({"churn": label, "request_id": infersight.current_request_id()})

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    return app
