"""A Flask model server with infersight: ``flask --app examples.flask_app run`` (or gunicorn).

The same fixed-weight logistic regression as ``fastapi_app.py``; the request ID follows the
request through the ``@monitor``-ed predict call into the logs and the response header.

    curl -s localhost:5000/predict -H 'content-type: application/json' \\
         -d '{"tenure": 12, "monthly_charges": 70.5, "support_calls": 2, "age": 41, "contract_months": 12}'
"""

from __future__ import annotations

import numpy as np
from flask import Flask, jsonify, request

import infersight
from infersight.integrations.flask import instrument_app

FEATURES = ("tenure", "monthly_charges", "support_calls", "age", "contract_months")
WEIGHTS = np.array([-0.08, 0.03, 0.45, -0.01, -0.05])
BIAS = -0.4

infersight.configure(service_name="churn-api", model="churn", version="1.0.0")
app = instrument_app(Flask("churn-api"), excluded_urls="^/healthz$")


@infersight.monitor(model="churn", version="1.0.0")
def predict(rows: list[dict[str, float]]) -> np.ndarray:
    """Churn probability per row."""
    x = np.array([[row[name] for name in FEATURES] for row in rows], dtype=float)
    return 1.0 / (1.0 + np.exp(-(x @ WEIGHTS + BIAS)))


@app.post("/predict")
def predict_route():
    row = request.get_json(silent=True)
    if not isinstance(row, dict) or set(FEATURES) - row.keys():
        return jsonify(error=f"send a JSON object with {', '.join(FEATURES)}"), 422
    try:
        probability = float(predict([row])[0])
    except (TypeError, ValueError):
        return jsonify(error="feature values must be numbers"), 422
    return {"churn_probability": probability, "request_id": infersight.current_request_id()}


@app.get("/healthz")
def healthz():
    return {"ok": True}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
