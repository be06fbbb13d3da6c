"""Real servers on loopback for the integration tests, and readers for what they exported.

Each server runs in its own process (uvicorn, werkzeug, gunicorn), configures infersight from
the environment we give it, and exports OTLP/gRPC to an :class:`OtlpSink` in the test process.
Servers export continuously (short batch delay and metric interval), so tests find their own
requests by request ID or trace ID instead of clearing the sink.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from support.otlp_sink import OtlpSink, attrs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess on 127.0.0.1; ``stop()`` sends SIGTERM so it flushes on exit."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str], cwd: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        # A file, not a pipe: a chatty server must never block on a full pipe buffer.
        self._out = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(argv, env=env, cwd=str(cwd), stdout=self._out, stderr=subprocess.STDOUT, text=True)
        self.output = ""

    def wait_ready(self, path: str = "/healthz", timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.stop()}")
            try:
                if httpx.get(self.base_url + path, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.output}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.seek(0)
        self.output = self._out.read()
        return self.output


def server_env(sink: OtlpSink, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO / "tests")]),
            "INFERSIGHT_ENDPOINT": sink.grpc_endpoint,
            "INFERSIGHT_PROTOCOL": "grpc",
            "INFERSIGHT_METRIC_EXPORT_INTERVAL": "0.5",
            "INFERSIGHT_LOG_OUTPUT": "none",
            "INFERSIGHT_PAYLOAD_SAMPLE_RATE": "1.0",
            "INFERSIGHT_EXCLUDED_URLS": "^/healthz$",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
        }
    )
    env.update(extra)
    return env


def start_uvicorn(sink: OtlpSink, module: str = "apps.fastapi_server:app", cwd: Path = HERE, **extra: str) -> Server:
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "uvicorn",
        module,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = Server(argv, port, server_env(sink, **extra), cwd)
    server.wait_ready()
    return server


def start_werkzeug(
    sink: OtlpSink, script: Path = HERE / "apps" / "flask_server.py", cwd: Path = HERE, **extra: str
) -> Server:
    port = free_port()
    server = Server([PYTHON, str(script), str(port)], port, server_env(sink, **extra), cwd)
    server.wait_ready()
    return server


# -- reading what arrived -------------------------------------------------------------------


def span_attrs(span: Any) -> dict[str, Any]:
    return attrs(span.attributes)


def spans_where(sink: OtlpSink, pred: Callable[[dict[str, Any], Any], bool]) -> list[tuple[dict[str, Any], Any]]:
    return [(res, s) for res, s in sink.spans() if pred(res, s)]


def server_spans(sink: OtlpSink, request_id: str) -> list[Any]:
    return [s for _, s in sink.spans() if s.kind == 2 and span_attrs(s).get("ml.request.id") == request_id]


def predict_spans(sink: OtlpSink, request_id: str) -> list[Any]:
    return [
        s for _, s in sink.spans() if s.name.startswith("predict ") and span_attrs(s).get("ml.request.id") == request_id
    ]


def wait_for_request(
    sink: OtlpSink, request_id: str, predicts: int = 1, timeout: float = 15.0
) -> tuple[Any, list[Any]]:
    """The server span and the predict spans of one request, once they have arrived."""
    ok = sink.wait_for(
        lambda s: len(server_spans(s, request_id)) == 1 and len(predict_spans(s, request_id)) >= predicts,
        timeout=timeout,
    )
    assert ok, f"spans for request {request_id} did not arrive: {len(server_spans(sink, request_id))} server spans"
    return server_spans(sink, request_id)[0], predict_spans(sink, request_id)


def ancestors(sink: OtlpSink, span: Any) -> list[bytes]:
    """Span IDs from ``span``'s parent up to the root, within what the sink holds."""
    by_id = {s.span_id: s for _, s in sink.spans()}
    out = []
    parent = span.parent_span_id
    while parent:
        out.append(parent)
        parent = by_id[parent].parent_span_id if parent in by_id else b""
    return out


def duration_count(sink: OtlpSink, **match: Any) -> int:
    """Requests counted by http.server.request.duration points whose attributes match."""
    total = 0
    for _, _, point in sink.metric_points("http.server.request.duration"):
        a = attrs(point.attributes)
        if all(a.get(k) == v for k, v in match.items()):
            total += point.count
    return total


def log_records_for(sink: OtlpSink, request_id: str) -> list[tuple[dict[str, Any], Any]]:
    return [
        (attrs(r.attributes), r)
        for _, r in sink.log_records()
        if attrs(r.attributes).get("ml.request.id") == request_id
    ]
