"""Bad input gets a clear answer and the processor keeps serving; tokens, TLS, backpressure."""

from __future__ import annotations

import gzip
import json
import os
import ssl
import subprocess
import threading
import time
from typing import Any

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from infersight.processor.storage.sqlite import SqliteStorage

PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}


def valid_metrics_request(model: str = "m", n: int = 1, label: str = "ok") -> bytes:
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    metric = sm.metrics.add(name="ml.prediction.class")
    metric.sum.aggregation_temporality = 1
    metric.sum.is_monotonic = True
    now = time.time_ns()
    dp = metric.sum.data_points.add(as_int=n, start_time_unix_nano=now - 10**9, time_unix_nano=now)
    for k, v in {"ml.model.name": model, "ml.output.name": "y", "ml.prediction.label": label}.items():
        dp.attributes.add(key=k).value.string_value = v
    return req.SerializeToString()


def classes(p: Any, model: str = "m", headers: dict | None = None) -> dict:
    r = httpx.get(f"http://127.0.0.1:{p.ports['web']}/api/models/{model}/outputs/y", headers=headers, timeout=10)
    return r.json().get("classes", {})


def _trace_request() -> bytes:
    t = ExportTraceServiceRequest()
    span = t.resource_spans.add().scope_spans.add().spans.add(name="x", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    span.start_time_unix_nano = 5
    return t.SerializeToString()


GARBAGE_HTTP = [
    ("random bytes", "metrics", os.urandom(4096), PB, 400, "not a protobuf"),
    ("truncated protobuf", "metrics", valid_metrics_request()[:-7], PB, 400, "not a protobuf"),
    ("trace request sent as metrics", "metrics", _trace_request(), PB, 400, "ExportMetricsServiceRequest"),
    (
        "google.rpc.Status sent as metrics",
        "metrics",
        Status(code=3, message="hi").SerializeToString(),
        PB,
        400,
        "unknown fields",
    ),
    (
        "metrics request sent as traces",
        "traces",
        valid_metrics_request(),
        PB,
        400,
        "trace_id/span_id must be 16/8 bytes",
    ),
    ("wrong content type", "metrics", valid_metrics_request(), {"content-type": "text/plain"}, 415, "text/plain"),
    ("no content type", "logs", b"{}", {}, 415, "(none)"),
    ("bad gzip", "metrics", b"\x1f\x8b\x08\x00garbage", {**PB, "content-encoding": "gzip"}, 400, "gzip"),
    ("unknown encoding", "metrics", b"x", {**PB, "content-encoding": "br"}, 415, "'br'"),
    ("deeply nested JSON", "logs", b"[" * 200_000 + b"]" * 200_000, JS, 400, "nested too deeply"),
    ("JSON array", "metrics", b"[1, 2]", JS, 400, "must be an object"),
    ("JSON of the wrong shape", "metrics", json.dumps({"resourceMetrics": "nope"}).encode(), JS, 400, "not an OTLP"),
    ("invalid UTF-8 JSON", "traces", b'{"resourceSpans": ["\xff"]}', JS, 400, "JSON"),
]


def test_garbage_over_http_is_answered_and_the_next_valid_request_is_stored(start_processor):
    p = start_processor()
    base = f"http://127.0.0.1:{p.ports['otlp_http']}"
    with httpx.Client(timeout=60) as client:
        for i, (what, signal, body, headers, status, message) in enumerate(GARBAGE_HTTP):
            r = client.post(f"{base}/v1/{signal}", content=body, headers=headers)
            assert r.status_code == status, (what, r.text)
            assert message in r.text, (what, r.text)
            ok = client.post(f"{base}/v1/metrics", content=valid_metrics_request(label=f"after-{i}"), headers=PB)
            assert ok.status_code == 200, what
        # A 100 MB body: 413, and the same connection pool keeps working.
        huge = client.post(f"{base}/v1/metrics", content=b"\0" * (100 * 2**20), headers=PB)
        assert huge.status_code == 413 and "larger than the limit" in huge.text
        bomb = gzip.compress(b"\0" * (40 * 2**20))  # small on the wire, 40 MB inflated
        r = client.post(f"{base}/v1/metrics", content=bomb, headers={**PB, "content-encoding": "gzip"})
        assert r.status_code == 413 and "inflates beyond" in r.text
        assert (
            client.post(f"{base}/v1/metrics", content=valid_metrics_request(label="last"), headers=PB).status_code
            == 200
        )
    stored = classes(p)
    assert stored == {**{f"after-{i}": 1 for i in range(len(GARBAGE_HTTP))}, "last": 1}


def _grpc_export(
    port: int, body: bytes, metadata: tuple = (), credentials: Any = None, service: str = "metrics.v1.MetricsService"
):
    target = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        call = channel.unary_unary(f"/opentelemetry.proto.collector.{service}/Export")
        return call(body, metadata=metadata, timeout=30)


def test_garbage_over_grpc_is_invalid_argument_and_the_server_keeps_serving(start_processor):
    p = start_processor(max_body_bytes=2**20)
    port = p.ports["otlp_grpc"]
    for body in (os.urandom(2048), valid_metrics_request()[:-7], _trace_request(), Status(code=1).SerializeToString()):
        with pytest.raises(grpc.RpcError) as err:
            _grpc_export(port, body)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "metrics request is invalid" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(port, b"\0" * (2 * 2**20))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _grpc_export(port, valid_metrics_request(label="fine"))
    assert classes(p) == {"fine": 1}


def test_token_is_required_on_grpc_http_and_the_api(start_processor, otel, attrs):
    p = start_processor(token="s3cret")
    base = f"http://127.0.0.1:{p.ports['otlp_http']}"
    assert httpx.post(f"{base}/v1/metrics", content=valid_metrics_request(), headers=PB).status_code == 401
    wrong = httpx.post(
        f"{base}/v1/metrics", content=valid_metrics_request(), headers={**PB, "authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and "bearer token" in wrong.text
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(p.ports["otlp_grpc"], valid_metrics_request())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for transport in ("http", "grpc"):
        denied = otel.metrics(p, transport)
        denied.get_meter("t").create_counter("ml.prediction.class").add(
            1, attrs(model="m", **{"ml.output.name": "y", "ml.prediction.label": f"denied-{transport}"})
        )
        denied.force_flush()  # the SDK reports flush, not export, success; the stored classes below tell
        allowed = otel.metrics(p, transport, token="s3cret")
        allowed.get_meter("t").create_counter("ml.prediction.class").add(
            1, attrs(model="m", **{"ml.output.name": "y", "ml.prediction.label": transport})
        )
        assert allowed.force_flush()
    web = f"http://127.0.0.1:{p.ports['web']}"
    assert httpx.get(f"{web}/api/models").status_code == 401
    assert httpx.get(f"{web}/healthz").status_code == 200
    assert classes(p, headers={"authorization": "Bearer s3cret"}) == {"http": 1, "grpc": 1}


def test_tls_on_every_listener(start_processor, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    p = start_processor(tls_cert=str(cert), tls_key=str(key))
    r = httpx.post(
        f"https://127.0.0.1:{p.ports['otlp_http']}/v1/metrics",
        content=valid_metrics_request(label="https"),
        headers=PB,
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    assert r.status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{p.ports['otlp_http']}/v1/metrics", content=valid_metrics_request(), headers=PB)
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    _grpc_export(p.ports["otlp_grpc"], valid_metrics_request(label="grpcs"), credentials=creds)
    body = httpx.get(
        f"https://127.0.0.1:{p.ports['web']}/api/models/m/outputs/y",
        verify=ssl.create_default_context(cafile=str(cert)),
    ).json()
    assert body["classes"] == {"https": 1, "grpcs": 1}


class BlockingStore(SqliteStorage):
    """A real SQLite store whose commits wait for the test to let them through."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, batch: Any, now: Any = None) -> None:
        self.entered.set()
        assert self.release.wait(60)
        super().write(batch, now)


def wait_until(cond: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_full_queue_answers_retryable_429_and_resource_exhausted(start_processor, tmp_path):
    store = BlockingStore(f"sqlite:///{tmp_path}/b.db", (60, 3600, 86400))
    p = start_processor(storage=store, queue_points=1, commit_interval=0.0)
    base = f"http://127.0.0.1:{p.ports['otlp_http']}"
    results: dict[str, int] = {}

    def send(label: str) -> None:
        results[label] = httpx.post(
            f"{base}/v1/metrics", content=valid_metrics_request(label=label), headers=PB, timeout=60
        ).status_code

    first = threading.Thread(target=send, args=("first",))
    first.start()
    assert store.entered.wait(30)  # the writer holds "first" and waits
    second = threading.Thread(target=send, args=("second",))
    second.start()
    wait_until(lambda: p.registry.value("infersight_processor_queue_requests") or len(p.ingestor._queue) == 1)
    full = httpx.post(f"{base}/v1/metrics", content=valid_metrics_request(label="third"), headers=PB)
    assert full.status_code == 429 and full.headers["retry-after"] == "2" and "queue is full" in full.text
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(p.ports["otlp_grpc"], valid_metrics_request(label="fourth"))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "google.rpc.retryinfo-bin" in dict(err.value.trailing_metadata())
    store.release.set()
    first.join(60)
    second.join(60)
    assert results == {"first": 200, "second": 200}
    assert classes(p) == {"first": 1, "second": 1}
    assert (
        'infersight_processor_queue_full_total{signal="metrics"} 2'
        in httpx.get(f"http://127.0.0.1:{p.ports['web']}/metrics").text
    )


def test_a_retried_request_is_stored_once(start_processor):
    p = start_processor()
    body = valid_metrics_request(label="once", n=5)
    for _ in range(3):  # an exporter resending the same bytes after a lost reply
        assert (
            httpx.post(f"http://127.0.0.1:{p.ports['otlp_http']}/v1/metrics", content=body, headers=PB).status_code
            == 200
        )
    _grpc_export(p.ports["otlp_grpc"], body)
    assert classes(p) == {"once": 5}


def test_every_member_of_a_multi_member_gzip_body_is_stored(start_processor):
    """``cat a.gz b.gz``: RFC 1952 allows several members; each one's data is stored, and bytes
    after the last member that are not another member are 400 with nothing stored."""
    p = start_processor()
    url = f"http://127.0.0.1:{p.ports['otlp_http']}/v1/metrics"
    gz = {**PB, "content-encoding": "gzip"}
    # Concatenated protobuf messages are one message with the repeated fields of both.
    body = b"".join(gzip.compress(valid_metrics_request(label=f"member-{i}", n=i + 1)) for i in range(3))
    body += gzip.compress(b"")  # an empty member is still a member
    r = httpx.post(url, content=body, headers=gz, timeout=30)
    assert r.status_code == 200, r.text
    assert classes(p) == {"member-0": 1, "member-1": 2, "member-2": 3}
    for tail, message in [
        (b"garbage", "trailing garbage after member 2"),
        (gzip.compress(b"x")[:-3], "truncated"),
        (b"\x1f\x8b\x08\x00not deflate", "not valid gzip"),
    ]:
        bad = gzip.compress(valid_metrics_request(label="bad-a")) + gzip.compress(valid_metrics_request(label="bad-b"))
        r = httpx.post(url, content=bad + tail, headers=gz, timeout=30)
        assert r.status_code == 400 and message in r.text, (tail, r.text)
    assert classes(p) == {"member-0": 1, "member-1": 2, "member-2": 3}
    # The limit counts every member: two members of 0.6 MiB each pass 1 MiB together.
    small = start_processor(max_body_bytes=2**20)
    half = gzip.compress(b"\0" * (600 * 2**10))
    r = httpx.post(f"http://127.0.0.1:{small.ports['otlp_http']}/v1/metrics", content=half + half, headers=gz)
    assert r.status_code == 413 and "inflates beyond" in r.text


def test_gzip_bodies_are_inflated_in_bounded_chunks_claimed_from_the_budget():
    from infersight.processor.ingest.points import RequestError
    from infersight.processor.ingest.receiver import BodyTooLarge, InflightBudget, OverBudget, _gunzip

    data = os.urandom(3 * 2**20)
    assert _gunzip(gzip.compress(data[: 2**20]) + gzip.compress(data[2**20 :]), len(data)) == data
    with pytest.raises(BodyTooLarge):
        _gunzip(gzip.compress(data), len(data) - 1)
    budget = InflightBudget(2**20)
    other = budget.claim()
    other.take(1)  # someone else holds a byte: this request may not pass the limit
    claim = budget.claim()
    with pytest.raises(OverBudget):
        _gunzip(gzip.compress(data), len(data), claim)
    assert claim.held <= 2**20  # stopped at the first chunk over the budget, not after inflating all
    claim.release()
    other.release()
    alone = budget.claim()  # alone, a request may be as large as max_body
    assert _gunzip(gzip.compress(data), len(data), alone) == data and alone.held == len(data) == budget.used
    alone.release()
    assert budget.used == 0
    with pytest.raises(RequestError):
        _gunzip(b"", 10)
