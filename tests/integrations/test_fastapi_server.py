"""FastAPI under uvicorn on loopback, driven by httpx; what arrives at the OTLP sink is checked."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from servers import (
    Server,
    ancestors,
    duration_count,
    log_records_for,
    server_spans,
    span_attrs,
    start_uvicorn,
    wait_for_request,
)

from support.otlp_sink import OtlpSink, attrs

pytestmark = pytest.mark.slow

ROW = {"tenure": 12, "charges": 70.5}


@pytest.fixture(scope="module", params=["fastapi", "starlette"])
def server(request: pytest.FixtureRequest, sink: OtlpSink) -> Iterator[Server]:
    """FastAPI (``instrument_app`` switches FastAPI's native telemetry off, so infersight owns
    the server span and the duration metric) and plain Starlette (the same, with no native
    telemetry to switch off)."""
    srv = start_uvicorn(sink, f"apps.{request.param}_server:app")
    srv.flavour = request.param  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture()
def fastapi_server(server: Server) -> Server:
    if server.flavour != "fastapi":  # type: ignore[attr-defined]
        pytest.skip("FastAPI only")
    return server


def rid() -> str:
    return "t-" + uuid.uuid4().hex


def test_predict_span_nests_under_server_span_in_the_callers_trace(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    r = httpx.post(
        server.base_url + "/predict/churn?delay_ms=1",
        json=ROW,
        headers={"X-Request-ID": request_id, "traceparent": f"00-{trace_id}-{parent_id}-01", "User-Agent": "it/1"},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == request_id
    assert r.json()["rid_before"] == r.json()["rid_after"] == request_id

    srv_span, predicts = wait_for_request(sink, request_id)
    a = span_attrs(srv_span)
    assert srv_span.name == "POST /predict/{model_name}"
    assert a["http.route"] == "/predict/{model_name}"  # the template, not the raw path
    assert a["url.path"] == "/predict/churn"
    assert a["http.request.method"] == "POST"
    assert a["http.response.status_code"] == 200
    assert a["url.scheme"] == "http"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    # Our own span (FastAPI's native one, switched off, leaves these opt-in attributes out).
    assert a["client.address"] == "127.0.0.1"
    assert a["user_agent.original"] == "it/1"
    assert "error.type" not in a
    # The caller's trace continues: same trace ID, parent is the caller's span.
    assert srv_span.trace_id.hex() == trace_id
    assert srv_span.parent_span_id.hex() == parent_id
    [predict] = predicts
    assert predict.trace_id == srv_span.trace_id
    assert srv_span.span_id in ancestors(sink, predict)
    assert span_attrs(predict)["ml.model.name"] == "churn"

    assert sink.wait_for(lambda s: log_records_for(s, request_id), timeout=10)
    [(log_attrs, record)] = log_records_for(sink, request_id)
    assert log_attrs["event.name"] == "ml.prediction"
    assert record.trace_id == srv_span.trace_id

    assert sink.wait_for(
        lambda s: duration_count(s, **{"http.route": "/predict/{model_name}", "http.response.status_code": 200}) >= 1
    )


def test_fifty_concurrent_requests_never_see_each_others_ids(server: Server, sink: OtlpSink) -> None:
    ids = [rid() for _ in range(50)]

    async def one(client: httpx.AsyncClient, request_id: str) -> httpx.Response:
        return await client.post(
            f"/predict/c?delay_ms={random.randint(0, 60)}", json=ROW, headers={"X-Request-ID": request_id}
        )

    async def all_at_once() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(one(client, i) for i in ids))

    responses = asyncio.run(all_at_once())
    for request_id, r in zip(ids, responses):
        assert r.status_code == 200
        assert r.headers["x-request-id"] == request_id
        body = r.json()
        assert body["rid_before"] == body["rid_after"] == request_id

    assert sink.wait_for(lambda s: all(len(server_spans(s, i)) == 1 for i in ids), timeout=20)
    wanted = set(ids)
    trace_of = {i: server_spans(sink, i)[0].trace_id for i in ids}
    assert len(set(trace_of.values())) == 50
    for _, span in sink.spans():
        a = span_attrs(span)
        if a.get("ml.request.id") in wanted:
            # Every span carrying one of our IDs lives in that request's own trace.
            assert span.trace_id == trace_of[a["ml.request.id"]]
    for i in ids:
        for _res, record in log_records_for(sink, i):
            assert record.trace_id == trace_of[i]


def test_malformed_json_and_wrong_types_reach_fastapis_422_and_are_counted(
    fastapi_server: Server, sink: OtlpSink
) -> None:
    server = fastapi_server
    bad_json = ['{"tenure": 1,', "not json", '{"tenure": NaN, "charges": }']
    wrong_types = [{"tenure": "twelve", "charges": 1}, {"tenure": [1], "charges": {}}, {"charges": 3}]
    with httpx.Client(base_url=server.base_url) as client:
        for text in bad_json:
            r = client.post("/score", content=text, headers={"content-type": "application/json"})
            assert r.status_code == 422
            assert r.json()["detail"][0]["type"] == "json_invalid"  # FastAPI's own answer
        for body in wrong_types:
            r = client.post("/score", json=body)
            assert r.status_code == 422
            assert r.json()["detail"][0]["loc"][0] == "body"
        good = [client.post("/score", json=ROW) for _ in range(4)]
    assert all(r.status_code == 200 for r in good)
    route = {"http.route": "/score"}
    assert sink.wait_for(
        lambda s: (
            duration_count(s, **route, **{"http.response.status_code": 422}) == 6
            and duration_count(s, **route, **{"http.response.status_code": 200}) == 4
        ),
        timeout=15,
    )
    assert duration_count(sink, **route) == 10
    # Rejected requests never reached the model: exactly the good ones were predicted.
    assert duration_count(sink, **route, **{"http.response.status_code": 200}) == 4


def test_five_megabyte_body_passes_through_whole(fastapi_server: Server, sink: OtlpSink) -> None:
    server = fastapi_server
    request_id = rid()
    payload = bytes(random.getrandbits(8) for _ in range(1024)) * (5 * 1024)
    r = httpx.post(server.base_url + "/size", content=payload, headers={"X-Request-ID": request_id}, timeout=30)
    assert r.status_code == 200 and r.json() == {"bytes": 5 * 1024 * 1024}
    assert sink.wait_for(lambda s: len(server_spans(s, request_id)) == 1)
    assert span_attrs(server_spans(sink, request_id)[0])["http.response.status_code"] == 200


@pytest.mark.parametrize(
    "bad_id",
    [
        "x" * 10_000,
        '"><script>alert(1)</script>',
        "1; DROP TABLE predictions;--",
        "${jndi:ldap://evil/a}",
        "../../etc/passwd",
        "id with spaces",
    ],
)
def test_bad_request_id_is_replaced_and_never_echoed(server: Server, sink: OtlpSink, bad_id: str) -> None:
    marker = rid()  # the trace ID lets us find the request whose ID we do not know in advance
    trace_id = uuid.uuid4().hex
    r = httpx.post(
        server.base_url + "/predict/churn",
        json=ROW,
        headers={"X-Request-ID": bad_id, "traceparent": f"00-{trace_id}-{marker[-16:]}-01"},
    )
    assert r.status_code == 200
    echoed = r.headers["x-request-id"]
    assert echoed != bad_id and bad_id not in r.text
    assert r.json()["rid_after"] == echoed
    srv_span, _ = wait_for_request(sink, echoed)
    assert srv_span.trace_id.hex() == trace_id
    for _, span in sink.spans():
        if span.trace_id.hex() == trace_id:
            assert bad_id not in repr(span_attrs(span))
    for _, record in sink.log_records():
        if record.trace_id.hex() == trace_id:
            assert bad_id not in repr(attrs(record.attributes))


def test_stream_span_covers_whole_body(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    r = httpx.get(server.base_url + "/stream?n=5&delay_ms=30", headers={"X-Request-ID": request_id})
    assert r.status_code == 200 and r.headers["x-request-id"] == request_id
    lines = r.text.splitlines()
    assert len(lines) == 5
    assert all(line.split()[2] == request_id for line in lines)  # the ID is current while streaming
    last_chunk_ns = int(lines[-1].split()[1])
    assert sink.wait_for(lambda s: len(server_spans(s, request_id)) == 1)
    span = server_spans(sink, request_id)[0]
    assert span.end_time_unix_nano >= last_chunk_ns  # the clock stopped after the last chunk
    assert span.name == "GET /stream"
    assert "error.type" not in span_attrs(span)


def test_client_disconnect_mid_stream_ends_the_span_and_server_keeps_serving(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    with httpx.Client(base_url=server.base_url) as client:
        with client.stream("GET", "/stream?n=500&delay_ms=10", headers={"X-Request-ID": request_id}) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("0 ")
            assert next(lines).startswith("1 ")
        # leaving the block closes the connection mid-stream
    assert sink.wait_for(lambda s: len(server_spans(s, request_id)) == 1, timeout=20)
    a = span_attrs(server_spans(sink, request_id)[0])
    assert a["error.type"] == "ClientDisconnected"
    assert a["http.response.status_code"] == 200
    after = httpx.post(server.base_url + "/predict/churn", json=ROW)
    assert after.status_code == 200
    assert server.alive()


def test_app_exception_is_a_recorded_500(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    r = httpx.get(server.base_url + "/boom", headers={"X-Request-ID": request_id})
    assert r.status_code == 500
    assert sink.wait_for(lambda s: len(server_spans(s, request_id)) == 1)
    span = server_spans(sink, request_id)[0]
    a = span_attrs(span)
    assert span.name == "GET /boom"
    assert a["http.response.status_code"] == 500 and a["error.type"] == "ValueError"
    assert span.status.code == 2  # ERROR
    assert any(e.name == "exception" for e in span.events)
    assert sink.wait_for(lambda s: duration_count(s, **{"http.route": "/boom", "error.type": "ValueError"}) >= 1)


def test_unmatched_path_has_no_route(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    r = httpx.get(server.base_url + "/no/such/thing/42", headers={"X-Request-ID": request_id})
    assert r.status_code == 404 and r.headers["x-request-id"] == request_id
    assert sink.wait_for(lambda s: len(server_spans(s, request_id)) == 1)
    span = server_spans(sink, request_id)[0]
    assert span.name == "GET" and "http.route" not in span_attrs(span)


def test_excluded_path_has_no_telemetry_at_all(server: Server, sink: OtlpSink) -> None:
    health_id = rid()
    for _ in range(3):
        r = httpx.get(server.base_url + "/healthz", headers={"X-Request-ID": health_id})
        assert r.status_code == 200 and r.json() == {"ok": 1}
        assert "x-request-id" not in r.headers
    # A normal request afterwards is the barrier: once its spans and metrics are in, so would be
    # anything the health checks had produced.
    barrier = rid()
    httpx.post(server.base_url + "/predict/churn", json=ROW, headers={"X-Request-ID": barrier})
    wait_for_request(sink, barrier)
    assert sink.wait_for(lambda s: duration_count(s, **{"http.route": "/predict/{model_name}"}) >= 1)
    for _, span in sink.spans():
        a = span_attrs(span)
        assert a.get("url.path") != "/healthz"
        assert a.get("ml.request.id") != health_id
        assert a.get("ml.model.name") != "health-probe"  # not even the child span of @monitor
    assert duration_count(sink, **{"http.route": "/healthz"}) == 0


def _enriched_server_span(sink: OtlpSink, **env: str) -> Any:
    """Start the FastAPI test app with ``env``, send one request and check that exactly one
    SERVER span (another instrumentation's) carries our request ID, with the predict span under
    it. Returns that span."""
    srv = start_uvicorn(sink, **env)
    try:
        request_id = rid()
        r = httpx.post(srv.base_url + "/predict/churn", json=ROW, headers={"X-Request-ID": request_id})
        assert r.status_code == 200 and r.headers["x-request-id"] == request_id
        srv_span, [predict] = wait_for_request(sink, request_id)
        same_trace = [s for _, s in sink.spans() if s.trace_id == srv_span.trace_id]
        assert [s.kind for s in same_trace].count(2) == 1  # one SERVER span, enriched
        assert srv_span.span_id in ancestors(sink, predict)
        return srv_span
    finally:
        srv.stop()


def test_existing_otel_server_span_is_enriched_not_duplicated(sink: OtlpSink) -> None:
    """opentelemetry-instrumentation-fastapi owns the server span (FastAPI then turns its
    native telemetry off); infersight adds the request ID to it rather than a second span."""
    srv_span = _enriched_server_span(sink, IT_OTEL_FASTAPI="1")
    assert srv_span.name == "POST /predict/{model_name}"


def test_one_server_span_and_one_duration_series_per_request(fastapi_server: Server, sink: OtlpSink) -> None:
    """With FastAPI's native telemetry switched off by ``instrument_app``, nothing is emitted
    twice: one SERVER span per request, ``http.server.request.duration`` from one scope."""
    request_id = rid()
    httpx.post(fastapi_server.base_url + "/predict/churn", json=ROW, headers={"X-Request-ID": request_id})
    srv_span, [predict] = wait_for_request(sink, request_id)
    same_trace = [s for _, s in sink.spans() if s.trace_id == srv_span.trace_id]
    assert [s.kind for s in same_trace].count(2) == 1
    assert {ss.scope.name for m in sink.traces for rs in m.resource_spans for ss in rs.scope_spans} == {"infersight"}
    assert sink.wait_for(lambda s: duration_count(s, **{"http.route": "/predict/{model_name}"}) >= 1)
    scopes = {
        sm.scope.name
        for m in sink.metrics
        for rm in m.resource_metrics
        for sm in rm.scope_metrics
        if any(metric.name == "http.server.request.duration" for metric in sm.metrics)
    }
    assert scopes == {"infersight.integrations"}


def test_native_telemetry_kept_on_request_is_enriched_not_duplicated(sink: OtlpSink) -> None:
    """``instrument_app(app, native_telemetry=True)``: FastAPI's own telemetry stays on and owns
    the server span; infersight adds the request ID to it rather than making a second one."""
    srv_span = _enriched_server_span(sink, IT_NATIVE_TELEMETRY="1")
    assert "client.address" not in span_attrs(srv_span)  # FastAPI's span, not ours


@pytest.mark.parametrize("flavour", ["fastapi", "starlette"])
def test_sigterm_exports_what_is_still_queued(flavour: str, sink: OtlpSink) -> None:
    """A container stop: uvicorn shuts down gracefully on SIGTERM and then re-raises the signal
    with its default action, so the process dies without running ``atexit``. Spans still queued
    (fewer than a batch, before the schedule delay) and metrics and feature statistics recorded
    since the last export must still arrive: the middleware flushes at the lifespan shutdown."""
    run = rid()  # marks this process's resource, so only its own metric points are counted
    srv = start_uvicorn(
        sink,
        f"apps.{flavour}_server:app",
        OTEL_BSP_SCHEDULE_DELAY="600000",
        INFERSIGHT_METRIC_EXPORT_INTERVAL="600",
        OTEL_BLRP_SCHEDULE_DELAY="600000",
        OTEL_RESOURCE_ATTRIBUTES=f"test.run={run}",
    )
    ids = [rid() for _ in range(3)]
    try:
        for request_id in ids:
            r = httpx.post(srv.base_url + "/predict/churn", json=ROW, headers={"X-Request-ID": request_id})
            assert r.status_code == 200
        assert not sink.wait_for(lambda s: server_spans(s, ids[0]), timeout=0.5)  # still queued
    finally:
        srv.stop()
    for request_id in ids:
        srv_span, [predict] = wait_for_request(sink, request_id, timeout=5)
        assert srv_span.span_id in ancestors(sink, predict)
        assert len(log_records_for(sink, request_id)) == 1  # the payload log (sampled at 1.0 here)
    durations = [p for res, _, p in sink.metric_points("http.server.request.duration") if res.get("test.run") == run]
    assert sum(p.count for p in durations) == 3
    values = [
        p
        for res, _, p in sink.metric_points("ml.feature.value")
        if res.get("test.run") == run and attrs(p.attributes).get("ml.model.name") == "churn"
    ]
    assert sum(p.count for p in values) == 3 * 2  # two features, three rows


@pytest.mark.parametrize("fail", [False, True])
def test_background_tasks_are_not_the_requests_wait(fastapi_server: Server, sink: OtlpSink, fail: bool) -> None:
    """FastAPI runs background tasks after the response, inside the same ASGI call: the server
    span and the duration metric end with the response; a task's monitored call still nests
    under the request (same request ID) and starts after the span's end; a task that fails
    leaves the answered request a success, with the exception on its span."""
    request_id = rid()
    r = httpx.post(
        fastapi_server.base_url + f"/predict-and-remember?fail={str(fail).lower()}",
        json=ROW,
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 200
    srv_span, predicts = wait_for_request(sink, request_id, predicts=2)
    later = [p for p in predicts if attrs(p.attributes).get("ml.model.name") == "churn-cache"]
    assert len(later) == 1 and later[0].start_time_unix_nano >= srv_span.end_time_unix_nano
    assert srv_span.span_id in ancestors(sink, later[0])
    a = span_attrs(srv_span)
    assert a["http.response.status_code"] == 200 and "error.type" not in a
    assert srv_span.status.code == 0  # unset: the client got its answer
    assert [e.name for e in srv_span.events] == (["exception"] if fail else [])
    assert sink.wait_for(lambda s: duration_count(s, **{"http.route": "/predict-and-remember"}) >= 1)
    assert duration_count(sink, **{"http.route": "/predict-and-remember", "error.type": "LookupError"}) == 0


def test_sync_endpoint_in_the_thread_pool_keeps_the_request(fastapi_server: Server, sink: OtlpSink) -> None:
    """A ``def`` endpoint runs in a worker thread: the request ID and the server span still
    reach the predict call there (FastAPI copies the context into the thread)."""
    ids = [rid() for _ in range(8)]

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=fastapi_server.base_url) as client:
            return await asyncio.gather(
                *(client.post("/predict-sync/churn", json=ROW, headers={"X-Request-ID": i}) for i in ids)
            )

    for request_id, r in zip(ids, asyncio.run(go())):
        assert r.status_code == 200 and r.json()["rid"] == request_id == r.headers["x-request-id"]
        srv_span, [predict] = wait_for_request(sink, request_id)
        assert srv_span.span_id in ancestors(sink, predict)
        assert span_attrs(srv_span)["http.route"] == "/predict-sync/{model_name}"
