"""A plain Starlette app (no native telemetry of its own): infersight owns the server span and
the http.server.request.duration metric. Same routes and answers as fastapi_server."""

from __future__ import annotations

import asyncio
import math
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import infersight
from infersight.integrations.fastapi import InferSightMiddleware

infersight.configure(service_name="it-starlette")


@infersight.monitor(model="churn", version="1")
def predict(row: dict) -> float:
    return 1.0 / (1.0 + math.exp(-(0.05 * row["tenure"] - 0.01 * row["charges"])))


@infersight.monitor(model="health-probe")
def probe(x: int) -> int:
    return x


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": probe(1)})


async def predict_route(request: Request) -> JSONResponse:
    before = infersight.current_request_id()
    delay_ms = int(request.query_params.get("delay_ms", "0"))
    row = await request.json()
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    score = predict(row)
    return JSONResponse(
        {
            "score": score,
            "model": request.path_params["model_name"],
            "rid_before": before,
            "rid_after": infersight.current_request_id(),
        }
    )


async def stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "5"))
    delay = int(request.query_params.get("delay_ms", "20")) / 1000

    async def chunks():
        for i in range(n):
            await asyncio.sleep(delay)
            yield f"{i} {time.time_ns()} {infersight.current_request_id()}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def boom(request: Request) -> JSONResponse:
    raise ValueError("boom")


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/predict/{model_name}", predict_route, methods=["POST"]),
        Route("/stream", stream),
        Route("/boom", boom),
    ]
)
app.add_middleware(InferSightMiddleware)
