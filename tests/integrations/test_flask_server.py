"""Flask under werkzeug's threaded server and under gunicorn (2 pre-forked workers, infersight
configured in the master before the fork), driven by requests; checked at the OTLP sink."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from servers import (
    HERE,
    PYTHON,
    Server,
    ancestors,
    duration_count,
    free_port,
    log_records_for,
    server_env,
    server_spans,
    span_attrs,
    start_werkzeug,
    wait_for_request,
)

from support.otlp_sink import OtlpSink, attrs

pytestmark = pytest.mark.slow

ROW = {"tenure": 12, "charges": 70.5}


@pytest.fixture(scope="module")
def server(sink: OtlpSink) -> Iterator[Server]:
    srv = start_werkzeug(sink)
    yield srv
    srv.stop()


def rid() -> str:
    return "f-" + uuid.uuid4().hex


def test_predict_span_nests_under_server_span_with_route_template(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    r = requests.post(
        server.base_url + "/predict/churn",
        json=ROW,
        timeout=10,
        headers={"X-Request-ID": request_id, "traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    assert r.status_code == 200 and r.headers["X-Request-ID"] == request_id
    assert r.json()["rid_before"] == r.json()["rid_after"] == request_id
    srv_span, [predict] = wait_for_request(sink, request_id)
    a = span_attrs(srv_span)
    assert srv_span.name == "POST /predict/<model_name>"
    assert a["http.route"] == "/predict/<model_name>" and a["url.path"] == "/predict/churn"
    assert a["http.response.status_code"] == 200 and a["http.request.method"] == "POST"
    assert a["client.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert a["user_agent.original"].startswith("python-requests/")
    assert srv_span.trace_id.hex() == trace_id and srv_span.parent_span_id.hex() == parent_id
    assert predict.trace_id == srv_span.trace_id and srv_span.span_id in ancestors(sink, predict)
    assert sink.wait_for(lambda s: log_records_for(s, request_id))
    [(log_attrs, record)] = log_records_for(sink, request_id)
    assert log_attrs["event.name"] == "ml.prediction" and record.trace_id == srv_span.trace_id
    assert sink.wait_for(
        lambda s: duration_count(s, **{"http.route": "/predict/<model_name>", "http.response.status_code": 200}) >= 1
    )


def test_fifty_concurrent_requests_never_see_each_others_ids(server: Server, sink: OtlpSink) -> None:
    ids = [rid() for _ in range(50)]

    def one(i: int, request_id: str) -> requests.Response:
        return requests.post(
            f"{server.base_url}/predict/c?delay_ms={(i * 7) % 50}",
            json=ROW,
            headers={"X-Request-ID": request_id},
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(one, range(50), ids))
    for request_id, r in zip(ids, responses):
        assert r.status_code == 200 and r.headers["X-Request-ID"] == request_id
        assert r.json()["rid_before"] == r.json()["rid_after"] == request_id
    assert sink.wait_for(lambda s: all(len(server_spans(s, i)) == 1 for i in ids), timeout=20)
    trace_of = {i: server_spans(sink, i)[0].trace_id for i in ids}
    assert len(set(trace_of.values())) == 50
    for _, span in sink.spans():
        a = span_attrs(span)
        if a.get("ml.request.id") in trace_of:
            assert span.trace_id == trace_of[a["ml.request.id"]]


def test_bad_input_gets_the_apps_answer_and_is_counted(server: Server, sink: OtlpSink) -> None:
    sent = 0
    for body in ['{"tenure": 1,', "nope", '{"tenure": "x"}']:
        r = requests.post(
            server.base_url + "/predict/bad", data=body, timeout=10, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and "expected a JSON object" in r.json()["error"]
        sent += 1
    assert sink.wait_for(
        lambda s: duration_count(s, **{"http.route": "/predict/<model_name>", "http.response.status_code": 422}) == sent
    )


def test_five_megabyte_body_and_bad_request_ids(server: Server, sink: OtlpSink) -> None:
    r = requests.post(server.base_url + "/size", data=b"\x00" * (5 * 1024 * 1024), timeout=30)
    assert r.status_code == 200 and r.json() == {"bytes": 5 * 1024 * 1024}
    for bad in ["y" * 10_000, "'; DROP TABLE t;--", "<img src=x onerror=alert(1)>", "${jndi:ldap://x/a}"]:
        trace_id = uuid.uuid4().hex
        r = requests.post(
            server.base_url + "/predict/churn",
            json=ROW,
            timeout=10,
            headers={"X-Request-ID": bad, "traceparent": f"00-{trace_id}-{trace_id[:16]}-01"},
        )
        assert r.status_code == 200
        echoed = r.headers["X-Request-ID"]
        assert echoed != bad and r.json()["rid_after"] == echoed
        srv_span, _ = wait_for_request(sink, echoed)
        assert srv_span.trace_id.hex() == trace_id
        for _, span in sink.spans():
            if span.trace_id.hex() == trace_id:
                assert bad not in repr(span_attrs(span))
        for _, record in sink.log_records():
            if record.trace_id.hex() == trace_id:
                assert bad not in repr(attrs(record.attributes))


def test_streamed_body_is_inside_the_span_and_disconnect_ends_it(server: Server, sink: OtlpSink) -> None:
    request_id = rid()
    r = requests.get(server.base_url + "/stream?n=4&delay_ms=30", headers={"X-Request-ID": request_id}, timeout=10)
    lines = r.text.splitlines()
    assert len(lines) == 4 and all(line.split()[2] == request_id for line in lines)
    assert sink.wait_for(lambda s: len(server_spans(s, request_id)) == 1)
    span = server_spans(sink, request_id)[0]
    assert span.end_time_unix_nano >= int(lines[-1].split()[1])  # the clock covers the whole stream
    assert "error.type" not in span_attrs(span)

    gone = rid()
    with requests.get(
        server.base_url + "/stream?n=1000&delay_ms=10", headers={"X-Request-ID": gone}, stream=True, timeout=10
    ) as r:
        it = r.iter_lines()
        assert next(it).startswith(b"0 ")
    assert sink.wait_for(lambda s: len(server_spans(s, gone)) == 1, timeout=20)
    assert span_attrs(server_spans(sink, gone)[0])["error.type"] == "ClientDisconnected"
    assert requests.post(server.base_url + "/predict/churn", json=ROW, timeout=10).status_code == 200


def test_exception_is_a_recorded_500_and_excluded_paths_are_silent(server: Server, sink: OtlpSink) -> None:
    boom_id = rid()
    r = requests.get(server.base_url + "/boom", headers={"X-Request-ID": boom_id}, timeout=10)
    assert r.status_code == 500 and r.headers["X-Request-ID"] == boom_id
    assert sink.wait_for(lambda s: len(server_spans(s, boom_id)) == 1)
    span = server_spans(sink, boom_id)[0]
    a = span_attrs(span)
    assert span.name == "GET /boom" and a["error.type"] == "ValueError" and a["http.response.status_code"] == 500
    assert span.status.code == 2 and any(e.name == "exception" for e in span.events)

    health_id = rid()
    for _ in range(3):
        h = requests.get(server.base_url + "/healthz", headers={"X-Request-ID": health_id}, timeout=10)
        assert h.status_code == 200 and "X-Request-ID" not in h.headers
    barrier = rid()
    requests.post(server.base_url + "/predict/churn", json=ROW, headers={"X-Request-ID": barrier}, timeout=10)
    wait_for_request(sink, barrier)
    for _, s in sink.spans():
        sa = span_attrs(s)
        assert sa.get("url.path") != "/healthz" and sa.get("ml.model.name") != "health-probe"
        assert sa.get("ml.request.id") != health_id
    assert duration_count(sink, **{"http.route": "/healthz"}) == 0


def test_gunicorn_two_preforked_workers_both_export(sink: OtlpSink) -> None:
    pytest.importorskip("gunicorn")
    port = free_port()
    srv = Server(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "--preload",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "apps.flask_server:app",
        ],
        port,
        server_env(sink, INFERSIGHT_SERVICE_NAME="it-gunicorn"),
        HERE,
    )
    try:
        srv.wait_ready()
        ids = [rid() for _ in range(40)]

        def one(request_id: str) -> requests.Response:
            return requests.post(
                f"{srv.base_url}/predict/g?delay_ms=40", json=ROW, headers={"X-Request-ID": request_id}, timeout=30
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(one, ids))
        assert all(r.status_code == 200 and r.headers["X-Request-ID"] == i for i, r in zip(ids, responses))
        pids = {r.json()["pid"] for r in responses}
        assert len(pids) == 2, f"expected both workers to answer, got pids {pids}"
        # Every request's server and predict spans arrive, whichever worker served it.
        assert sink.wait_for(lambda s: all(len(server_spans(s, i)) == 1 for i in ids), timeout=20), srv.output
        for i in ids:
            srv_span, [predict] = wait_for_request(sink, i)
            assert srv_span.span_id in ancestors(sink, predict)
    finally:
        out = srv.stop()
    assert "Traceback" not in out, out
