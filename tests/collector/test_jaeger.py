"""A request's trace found in a real Jaeger by its request ID, through Jaeger's HTTP query API
(``/api/traces?service=...&tags={"ml.request.id": ...}``), the way collector-config/README.md
tells a user to find it.

Jaeger cannot be installed here, so this runs only against one you point it at:
``JAEGER_URL`` (the query API, e.g. http://127.0.0.1:16686, the compose stack's) and
``JAEGER_OTLP_ENDPOINT`` (where to send OTLP/gRPC; default: JAEGER_URL's host on port 4317,
which is the stack's collector or a bare Jaeger's own OTLP port).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

import infersight

JAEGER_URL = os.environ.get("JAEGER_URL", "").rstrip("/")
pytestmark = pytest.mark.skipif(
    not JAEGER_URL,
    reason="JAEGER_URL is not set (point it at a Jaeger query API, e.g. the compose stack's http://127.0.0.1:16686)",
)


def test_a_requests_trace_is_found_in_jaeger_by_its_request_id() -> None:
    otlp = os.environ.get("JAEGER_OTLP_ENDPOINT") or f"http://{urlparse(JAEGER_URL).hostname}:4317"
    service = f"infersight-jaeger-test-{uuid.uuid4().hex[:8]}"
    infersight.configure(endpoint=otlp, protocol="grpc", service_name=service, log_output="none")
    ids: list[str] = []
    try:

        @infersight.monitor(model="jaeger-test", version="1")
        def predict(row: dict[str, Any]) -> float:
            rid = infersight.current_request_id()
            assert rid is not None
            ids.append(rid)
            return float(row["x"]) + 1

        for i in range(3):
            predict({"x": float(i)})
        assert infersight.flush()
    finally:
        infersight.configure(exporter="none", log_output="none")

    wanted = ids[1]
    deadline = time.monotonic() + 30  # the collector batches, Jaeger indexes
    traces: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not traces:
        r = httpx.get(
            f"{JAEGER_URL}/api/traces",
            params={"service": service, "tags": json.dumps({"ml.request.id": wanted}), "limit": 20},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        traces = r.json().get("data") or []
        if not traces:
            time.sleep(1)
    assert len(traces) == 1, f"{len(traces)} traces for ml.request.id={wanted} in {JAEGER_URL}"
    spans = traces[0]["spans"]
    tags = [{t["key"]: t["value"] for t in s["tags"]} for s in spans]
    predict_spans = [t for s, t in zip(spans, tags) if s["operationName"] == "predict jaeger-test"]
    assert predict_spans and predict_spans[0]["ml.request.id"] == wanted
    assert predict_spans[0]["ml.model.name"] == "jaeger-test" and predict_spans[0]["ml.model.version"] == "1"
