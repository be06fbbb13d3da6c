"""Flask app for the real-server tests: werkzeug (``python flask_server.py PORT``) or gunicorn
(``gunicorn --preload apps.flask_server:app``). infersight is configured from the environment,
in the master before any fork."""

from __future__ import annotations

import math
import os
import signal
import sys
import time

from flask import Flask, Response, jsonify, request

import infersight
from infersight.integrations.flask import instrument_app

infersight.configure(service_name="it-flask")

app = Flask("it-flask")
if os.environ.get("IT_OTEL_FLASK") == "1":
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app)


@infersight.monitor(model="churn", version="1")
def predict(row: dict) -> float:
    return 1.0 / (1.0 + math.exp(-(0.05 * float(row["tenure"]) - 0.01 * float(row["charges"]))))


@infersight.monitor(model="health-probe")
def probe(x: int) -> int:
    return x


@app.get("/healthz")
def healthz():
    return {"ok": probe(1)}


@app.post("/predict/<model_name>")
def predict_route(model_name: str):
    before = infersight.current_request_id()
    delay_ms = int(request.args.get("delay_ms", "0"))
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not {"tenure", "charges"} <= body.keys():
        return jsonify(error="expected a JSON object with tenure and charges"), 422
    if delay_ms:
        time.sleep(delay_ms / 1000)
    score = predict(body)
    return {
        "score": score,
        "model": model_name,
        "rid_before": before,
        "rid_after": infersight.current_request_id(),
        "pid": os.getpid(),
    }


@app.post("/size")
def size():
    n = 0
    stream = request.stream
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        n += len(chunk)
    return {"bytes": n}


@app.get("/stream")
def stream():
    n = int(request.args.get("n", "5"))
    delay = int(request.args.get("delay_ms", "20")) / 1000

    def chunks():
        for i in range(n):
            time.sleep(delay)
            yield f"{i} {time.time_ns()} {infersight.current_request_id()}\n"

    return Response(chunks(), mimetype="text/plain")


@app.get("/boom")
def boom():
    raise ValueError("boom")


instrument_app(app)

if __name__ == "__main__":
    from werkzeug.serving import run_simple

    # SIGTERM → normal interpreter exit, so infersight's atexit flush runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
