"""A loopback OTLP receiver (gRPC and HTTP/protobuf) for tests, built on opentelemetry-proto.

It stores every decoded export request so a test can read exactly what went over the wire:

    with OtlpSink() as sink:
        infersight.configure(endpoint=sink.grpc_endpoint, protocol="grpc")
        ...
        infersight.flush()
        spans = sink.spans()
"""

from __future__ import annotations

import gzip
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


def any_value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


class OtlpSink:
    """Receives OTLP on 127.0.0.1 ephemeral ports; decoded requests in ``.traces``,
    ``.metrics`` and ``.logs`` (lists of protobuf export requests)."""

    def __init__(self, keep: bool = True, http_port: int = 0) -> None:
        """``keep=False`` only counts requests (long benchmarks must not hoard them);
        ``http_port`` picks the OTLP/HTTP port (default: any free one)."""
        self.keep = keep
        self._want_http_port = http_port
        self.received = {"traces": 0, "metrics": 0, "logs": 0}
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> OtlpSink:
        sink = self

        class Trace(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
                sink._add(sink.traces, request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
                sink._add(sink.metrics, request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
                sink._add(sink.logs, request)
                return logs_service_pb2.ExportLogsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Trace(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server

        routes = {
            "/v1/traces": (
                trace_service_pb2.ExportTraceServiceRequest,
                self.traces,
                trace_service_pb2.ExportTraceServiceResponse,
            ),
            "/v1/metrics": (
                metrics_service_pb2.ExportMetricsServiceRequest,
                self.metrics,
                metrics_service_pb2.ExportMetricsServiceResponse,
            ),
            "/v1/logs": (
                logs_service_pb2.ExportLogsServiceRequest,
                self.logs,
                logs_service_pb2.ExportLogsServiceResponse,
            ),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server name
                route = routes.get(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                msg = route[0]()
                msg.ParseFromString(body)
                sink._add(route[1], msg)
                out = route[2]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", self._want_http_port), Handler)
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(0)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> OtlpSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _add(self, bucket: list[Any], msg: Any) -> None:
        with self.arrived:
            kind = "traces" if bucket is self.traces else "metrics" if bucket is self.metrics else "logs"
            self.received[kind] += 1
            if self.keep:
                bucket.append(msg)
            self.arrived.notify_all()

    def clear(self) -> None:
        with self.lock:
            self.traces.clear()
            self.metrics.clear()
            self.logs.clear()

    # -- reading --------------------------------------------------------------------------

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        with self.lock:
            reqs = list(self.traces)
        return [
            (attrs(rs.resource.attributes), span)
            for req in reqs
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def log_records(self, *, outcomes: bool = False) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, record) for every payload/feedback log record; with
        ``outcomes=True``, the ``ml.outcomes`` records (every call's prediction) instead."""
        with self.lock:
            reqs = list(self.logs)
        return [
            (attrs(rl.resource.attributes), rec)
            for req in reqs
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for rec in sl.log_records
            if (rec.event_name == "ml.outcomes") == outcomes
        ]

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], Any, Any]]:
        """(resource attributes, metric, data point) for every point of metric ``name``."""
        with self.lock:
            reqs = list(self.metrics)
        out = []
        for req in reqs:
            for rm in req.resource_metrics:
                res = attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name != name:
                            continue
                        data = getattr(m, m.WhichOneof("data"))
                        for p in data.data_points:
                            out.append((res, m, p))
        return out

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` is true (re-checked on every arrival)."""
        import time

        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                self.lock.release()
                try:
                    ok = predicate(self)
                finally:
                    self.lock.acquire()
                if ok:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.arrived.wait(min(remaining, 0.2))
