"""Request bodies cannot run the processor out of memory: many concurrent gzip bombs (a few KiB
on the wire, ``max_body`` inflated, valid OTLP that decodes to many objects) against a real
processor in a subprocess. It answers 413 / 429 + Retry-After (HTTP) and RESOURCE_EXHAUSTED
(gRPC), stays up, and its peak RSS (``VmHWM``) grows by a bound derived from ``max_body`` and
``max_inflight``, not by the number of requests.

Run as a script to print the figures for other limits (no assertions then)::

    python tests/processor/test_memory_bound.py [MAX_BODY_MIB [MAX_INFLIGHT_MIB [REQUESTS]]]
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx

PB = {"content-type": "application/x-protobuf"}
MIB = 2**20
# Bytes of Python and protobuf objects per inflated byte of a span-heavy request, measured
# about 20 (a 32 MiB request of 414k small spans peaks 666 MiB above the idle processor). The
# bound below allows 40: generous, and still a tenth of what 32 concurrent bombs took before.
DECODE_EXPANSION = 40
SLACK = 96 * MIB  # threads, allocator arenas, SQLite's cache


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def span_bomb(inflated: int) -> bytes:
    """A gzip body inflating to about ``inflated`` bytes: one ExportTraceServiceRequest of as
    many small ``predict`` spans (each carrying ml.model.name, so each is decoded) as fit."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    span = Span(
        name="predict bomb",
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        start_time_unix_nano=time.time_ns(),
        end_time_unix_nano=time.time_ns() + 1000,
    )
    span.attributes.add(key="ml.model.name").value.string_value = "bomb"
    field = _ld(b"\x12", span.SerializeToString())
    spans = field * ((inflated - 32) // len(field))
    return gzip.compress(_ld(b"\x0a", _ld(b"\x12", spans)), 9)


def _vm_kib(pid: int, key: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


class Subprocess:
    """``infersight processor`` in a child process on ephemeral loopback ports."""

    def __init__(self, tmp: Path, max_body: int, max_inflight: int) -> None:
        config = tmp / "processor.yaml"
        config.write_text(f"ingest:\n  max_body: {max_body}\n  max_inflight: {max_inflight}\n")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infersight.processor",
                "--config",
                str(config),
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
                "--web",
                "127.0.0.1:0",
                "--db",
                f"sqlite:///{tmp}/p.db",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready" not in line:
            self.proc.kill()
            raise AssertionError(
                f"processor did not start: {line}{self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.ports = {k: int(v) for k, v in (kv.split("=", 1) for kv in line.split()[3:]) if v.isdigit()}

    def peak(self) -> int:
        return _vm_kib(self.proc.pid, "VmHWM") * 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def bombard(server: Subprocess, bomb: bytes, requests: int) -> tuple[list[Any], list[Any]]:
    """``requests`` concurrent HTTP posts of ``bomb``, then as many concurrent gRPC calls with
    the same (inflated) request sent gzip-compressed; their answers."""
    http: list[Any] = []
    rpc: list[Any] = []
    url = f"http://127.0.0.1:{server.ports['otlp_http']}/v1/traces"

    def post() -> None:
        try:
            r = httpx.post(url, content=bomb, headers={**PB, "content-encoding": "gzip"}, timeout=300)
            http.append((r.status_code, r.headers.get("retry-after"), r.text[:200]))
        except httpx.HTTPError as exc:
            http.append((type(exc).__name__, None, str(exc)))

    inflated = gzip.decompress(bomb)
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.ports['otlp_grpc']}",
        compression=grpc.Compression.Gzip,
        options=[("grpc.max_send_message_length", len(inflated) + MIB)],
    )
    call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

    def export() -> None:
        try:
            call(inflated, timeout=300)
            rpc.append((grpc.StatusCode.OK, None))
        except grpc.RpcError as exc:
            rpc.append((exc.code(), dict(exc.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")))

    for target in (post, export):
        threads = [threading.Thread(target=target) for _ in range(requests)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    channel.close()
    return http, rpc


def test_concurrent_gzip_bombs_are_refused_within_a_memory_bound(tmp_path):
    max_body, max_inflight = 4 * MIB, 8 * MIB
    server = Subprocess(tmp_path, max_body, max_inflight)
    try:
        idle = server.peak()
        http, rpc = bombard(server, span_bomb(max_body - 4096), 32)
        grown = server.peak() - idle
        codes = [c for c, _, _ in http]
        assert set(codes) <= {200, 429}, http
        assert codes.count(429) >= 32 - (max_inflight // max_body + 1) * 2, codes  # most are turned away
        assert all(ra == "2" and "in flight" in text for c, ra, text in http if c == 429), http
        assert {c for c, _ in rpc} <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, rpc
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in {c for c, _ in rpc}
        # One over max_body (inflated) is 413 however small on the wire.
        big = httpx.post(
            f"http://127.0.0.1:{server.ports['otlp_http']}/v1/traces",
            content=span_bomb(max_body + MIB),
            headers={**PB, "content-encoding": "gzip"},
            timeout=60,
        )
        assert big.status_code == 413 and "inflates beyond" in big.text
        # Still up and serving.
        assert httpx.get(f"http://127.0.0.1:{server.ports['web']}/healthz", timeout=30).status_code == 200
        assert server.proc.poll() is None
        bound = DECODE_EXPANSION * (max_inflight + max_body) + SLACK
        assert grown < bound, f"peak RSS grew {grown / MIB:.0f} MiB; bound {bound / MIB:.0f} MiB"
    finally:
        server.stop()


if __name__ == "__main__":
    import tempfile

    body = int(sys.argv[1]) * MIB if len(sys.argv) > 1 else 32 * MIB
    inflight = int(sys.argv[2]) * MIB if len(sys.argv) > 2 else 64 * MIB
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    bomb = span_bomb(body - 4096)
    with tempfile.TemporaryDirectory() as tmp:
        srv = Subprocess(Path(tmp), body, inflight)
        try:
            idle = srv.peak()
            t0 = time.monotonic()
            http_answers, rpc_answers = bombard(srv, bomb, n)
            peak = srv.peak()
            print(
                f"max_body {body // MIB} MiB, max_inflight {inflight // MIB} MiB, {n} concurrent bombs of "
                f"{len(bomb) // 1024} KiB gzip each over HTTP, then {n} over gRPC ({time.monotonic() - t0:.1f} s)"
            )
            print("HTTP answers:", sorted(str(c) for c, _, _ in http_answers))
            print("gRPC answers:", sorted(str(c) for c, _ in rpc_answers))
            print(f"VmHWM idle {idle / MIB:.0f} MiB, after {peak / MIB:.0f} MiB, growth {(peak - idle) / MIB:.0f} MiB")
        finally:
            srv.stop()
