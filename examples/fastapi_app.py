"""A FastAPI model server with infersight: ``uvicorn examples.fastapi_app:app``.

A logistic regression with fixed weights over five named features. Every request gets a server
span, a request ID (``X-Request-ID`` in and out), and the ``@monitor``-ed predict call nests under
it with feature statistics, latency and sampled payload logs.

    curl -s localhost:8000/predict -H 'content-type: application/json' \\
         -d '{"tenure": 12, "monthly_charges": 70.5, "support_calls": 2, "age": 41, "contract_months": 12}'
"""

from __future__ import annotations

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

import infersight
from infersight.integrations.fastapi import instrument_app

FEATURES = ("tenure", "monthly_charges", "support_calls", "age", "contract_months")
WEIGHTS = np.array([-0.08, 0.03, 0.45, -0.01, -0.05])
BIAS = -0.4

infersight.configure(service_name="churn-api", model="churn", version="1.0.0")
app = FastAPI(title="churn model")
instrument_app(app, excluded_urls="^/healthz$")


class Customer(BaseModel):
    tenure: float
    monthly_charges: float
    support_calls: int
    age: float
    contract_months: int


@infersight.monitor(model="churn", version="1.0.0")
def predict(rows: list[dict[str, float]]) -> np.ndarray:
    """Churn probability per row (a batch of one for the HTTP route)."""
    x = np.array([[row[name] for name in FEATURES] for row in rows], dtype=float)
    return 1.0 / (1.0 + np.exp(-(x @ WEIGHTS + BIAS)))


@app.post("/predict")
def predict_route(customer: Customer) -> dict:
    probability = float(predict([customer.model_dump()])[0])
    return {"churn_probability": probability, "request_id": infersight.current_request_id()}


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}
