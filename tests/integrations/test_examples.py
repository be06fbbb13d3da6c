"""The example model servers the quick start uses, run for real: uvicorn for FastAPI, gunicorn-free
werkzeug for Flask, each exporting to the loopback OTLP sink."""

from __future__ import annotations

import uuid

import httpx
import pytest
from servers import PYTHON, REPO, Server, free_port, server_env, start_uvicorn, wait_for_request

from support.otlp_sink import OtlpSink

pytestmark = pytest.mark.slow

CUSTOMER = {"tenure": 12, "monthly_charges": 70.5, "support_calls": 2, "age": 41, "contract_months": 12}


def check(base_url: str, sink: OtlpSink, route: str) -> None:
    request_id = "ex-" + uuid.uuid4().hex
    r = httpx.post(base_url + "/predict", json=CUSTOMER, headers={"X-Request-ID": request_id}, timeout=10)
    assert r.status_code == 200 and r.headers["x-request-id"] == request_id
    body = r.json()
    assert 0.0 < body["churn_probability"] < 1.0 and body["request_id"] == request_id
    server_span, [predict] = wait_for_request(sink, request_id)
    assert predict.trace_id == server_span.trace_id
    assert dict((kv.key, kv.value.string_value) for kv in server_span.attributes)["http.route"] == route
    bad = httpx.post(base_url + "/predict", json={"tenure": "long"}, timeout=10)
    assert bad.status_code == 422


def test_fastapi_example(sink: OtlpSink) -> None:
    srv = start_uvicorn(sink, "examples.fastapi_app:app", cwd=REPO, INFERSIGHT_EXCLUDED_URLS="")
    try:
        check(srv.base_url, sink, "/predict")
    finally:
        srv.stop()


def test_flask_example(sink: OtlpSink) -> None:
    port = free_port()
    srv = Server(
        [PYTHON, "-m", "flask", "--app", "examples.flask_app", "run", "--port", str(port)], port, server_env(sink), REPO
    )
    try:
        srv.wait_ready()
        check(srv.base_url, sink, "/predict")
    finally:
        srv.stop()
