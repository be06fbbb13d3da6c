"""FastAPI app for the real-server tests (run by uvicorn in a subprocess).

infersight is configured from the environment the test sets (INFERSIGHT_ENDPOINT, ...).
"""

from __future__ import annotations

import asyncio
import math
import os
import time

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

import infersight
from infersight.integrations.fastapi import instrument_app

infersight.configure(service_name="it-fastapi")

app = FastAPI()
if os.environ.get("IT_OTEL_FASTAPI") == "1":
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app)


class Features(BaseModel):
    tenure: float
    charges: float


@infersight.monitor(model="churn", version="1")
def predict(row: dict) -> float:
    return 1.0 / (1.0 + math.exp(-(0.05 * row["tenure"] - 0.01 * row["charges"])))


@infersight.monitor(model="health-probe")
def probe(x: int) -> int:
    return x


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": probe(1)}


@app.post("/predict/{model_name}")
async def predict_route(model_name: str, features: Features, delay_ms: int = 0) -> dict:
    before = infersight.current_request_id()
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    score = predict(features.model_dump())
    return {"score": score, "model": model_name, "rid_before": before, "rid_after": infersight.current_request_id()}


@app.post("/predict-sync/{model_name}")
def predict_sync(model_name: str, features: Features) -> dict:
    """A plain ``def`` endpoint: FastAPI runs it in its thread pool (the usual shape for a
    CPU-bound model)."""
    return {"score": predict(features.model_dump()), "rid": infersight.current_request_id()}


@app.post("/score")
async def score(features: Features) -> dict:
    return {"score": predict(features.model_dump())}


@app.post("/size")
async def size(request: Request) -> dict:
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    return {"bytes": n}


@app.get("/stream")
async def stream(n: int = 5, delay_ms: int = 20) -> StreamingResponse:
    async def chunks():
        for i in range(n):
            await asyncio.sleep(delay_ms / 1000)
            yield f"{i} {time.time_ns()} {infersight.current_request_id()}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@infersight.monitor(model="churn-cache")
def remember(row: dict) -> float:
    return row["tenure"]


async def remember_later(row: dict, fail: bool) -> None:
    await asyncio.sleep(0.05)
    remember(row)  # a monitored call after the response: nests under the request, starts after its end
    if fail:
        raise LookupError("cache write failed")


@app.post("/predict-and-remember")
async def predict_and_remember(features: Features, background: BackgroundTasks, fail: bool = False) -> dict:
    row = features.model_dump()
    background.add_task(remember_later, row, fail)
    return {"score": predict(row)}


@app.get("/boom")
async def boom() -> dict:
    raise ValueError("boom")


instrument_app(app, native_telemetry=os.environ.get("IT_NATIVE_TELEMETRY") == "1")
