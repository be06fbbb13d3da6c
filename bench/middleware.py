"""HTTP middleware throughput, side by side in one run (issue 3). Prints ratios, asserts nothing.

The same trivial-predict app, served by a real server in its own process on 127.0.0.1 and loaded
by a separate load-generator process (threads, keep-alive connections, fixed duration). Every
variant that exports does so over OTLP/gRPC to one loopback sink (in the driver process), with an
SDK tracer *and* meter provider, so each instrumentation's HTTP metric is really recorded:

FastAPI under uvicorn
  bare                   no telemetry (no provider, so FastAPI's native telemetry is inactive)
  passthrough            no telemetry, but a pure ASGI middleware wrapping receive and send and a
                         do-nothing wrapt decorator on predict: what any instrumentation's layers
                         cost before they record anything (reference)
  otel                   opentelemetry-instrumentation-fastapi (FastAPI's native telemetry steps
                         aside by itself when it finds that middleware in the stack)
  native                 FastAPI's own telemetry, on by default once a provider exists; reference
  infersight             infersight middleware + @monitor (instrument_app switches FastAPI's
                         native telemetry off: our middleware owns the server span)
  infersight-native-on   the same with instrument_app(app, native_telemetry=True): FastAPI owns
                         the server span (and adds its operation spans); we enrich it
  infersight-no-monitor  middleware only (undecorated predict): splits the cost
  infersight-sampled     infersight with 10% of traces kept (sample_ratio=0.1)
Flask under gunicorn (1 sync worker)
  bare, passthrough (a WSGI middleware wrapping start_response and the body, and the do-nothing
  decorator), otel (opentelemetry-instrumentation-flask), infersight, infersight-no-monitor,
  infersight-sampled

Exporting variants send OTLP/gRPC; BENCH_PROTOCOL=http makes infersight send OTLP/HTTP instead.

Floors (issue 3): infersight ÷ OTel >= 1.0 and infersight ÷ bare >= 0.85. Variants are
interleaved round by round (the order rotates) and the median of the rounds is reported with the
min-max spread. Besides requests/s, the server process's CPU time per request (user + system, all
its threads and workers, export threads included) is reported: on a shared 2-core machine it moves
far less than throughput, and its ratios are the steadier estimate. Of that CPU, the part spent by
the threads that serve requests (the main threads) is shown on its own, so that work moved to or
done on export threads can be told from work on the request path. Spans and log records per
request, by instrumentation scope, show what each variant emits.

``--micro`` measures one in-process exchange instead (no server, no sockets): the ASGI middleware
around a raw ASGI app, and ``@monitor`` around the trivial predict, with a null span exporter.

``--instructions`` runs each server under valgrind's cachegrind (needs ``valgrind``) and counts
what it executes per request: instructions, and first-level instruction and data cache misses of a
simulated 32 kB / 32 kB / 2 MB cache. Two runs per variant (``--requests``, default 400 and 1600
requests from 4 keep-alive clients) are subtracted, so start-up and shut-down cancel out. Unlike
time on a shared VM these counts do not move from run to run; they say how much work each variant
does, not how fast the machine does it (cache misses cost far more than they count here).

``--predict-us N`` makes predict hold the GIL busy for N µs (a stand-in for a real model's cost;
the floors are stated for the trivial predict, N = 0): the ratios for models that do some work.

Run: python bench/middleware.py [--seconds 3] [--rounds 5] [--concurrency 8] [--only fastapi|flask]
                                [--variants bare,otel,infersight] [--predict-us 0]
     python bench/middleware.py --micro
     python bench/middleware.py --instructions [--only fastapi|flask] [--variants bare,infersight]
"""

import argparse
import asyncio
import collections
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ROW = b'{"tenure": 12, "charges": 70.5}'

# -- the served apps (built when this file is imported by uvicorn / gunicorn) ------------------------


PREDICT_SECONDS = float(os.environ.get("BENCH_PREDICT_US", "0")) / 1e6


def _score(row: dict) -> float:
    if PREDICT_SECONDS:  # --predict-us: a model that holds the GIL this long (busy, like real inference)
        until = time.perf_counter() + PREDICT_SECONDS
        while time.perf_counter() < until:
            pass
    return 1.0 / (1.0 + math.exp(-(0.05 * row["tenure"] - 0.01 * row["charges"])))


def _otel_sdk() -> None:
    """What an OTel user runs: SDK tracer and meter providers exporting OTLP/gRPC (spans in
    batches, metrics every 60 s like infersight's default)."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = os.environ["BENCH_ENDPOINT"]
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True), 60_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


class _PassThroughASGI:
    """The least an ASGI middleware that watches a request can do: wrap receive and send."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped_receive() -> Any:
            return await receive()

        async def wrapped_send(message: Any) -> None:
            await send(message)

        await self.app(scope, wrapped_receive, wrapped_send)


class _PassThroughWSGI:
    """The WSGI counterpart: wrap start_response and the response iterable."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        def wrapped_start(status: str, headers: Any, exc_info: Any = None) -> Any:
            return start_response(status, headers, exc_info)

        body = self.app(environ, wrapped_start)
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


def _predictor(variant: str) -> Any:

    if variant == "passthrough":
        import wrapt

        @wrapt.decorator
        def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return wrapped(*args, **kwargs)

        return passthrough(_score)

    if variant.startswith("infersight"):
        import infersight

        # "-sampled": 10% of traces kept; metrics and ML statistics still cover every request.
        http = os.environ.get("BENCH_PROTOCOL") == "http"
        infersight.configure(
            service_name="bench",
            protocol="http/protobuf" if http else "grpc",
            endpoint=os.environ["BENCH_HTTP_ENDPOINT" if http else "BENCH_ENDPOINT"],
            log_output="none",
            sample_ratio=0.1 if variant.endswith("-sampled") else 1.0,
        )
        if variant != "infersight-no-monitor":
            return infersight.monitor(model="bench", version="1")(_score)
    return _score


def build_fastapi(variant: str) -> Any:
    from fastapi import FastAPI, Request

    predict = _predictor(variant)
    app = FastAPI()

    @app.post("/predict")
    async def route(request: Request) -> dict:
        return {"score": predict(await request.json())}

    if variant == "passthrough":
        app.add_middleware(_PassThroughASGI)
    if variant == "otel":
        _otel_sdk()
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
    elif variant == "native":
        _otel_sdk()
    elif variant.startswith("infersight"):
        from infersight.integrations.fastapi import instrument_app

        instrument_app(app, native_telemetry=variant == "infersight-native-on")
    return app


def build_flask(variant: str) -> Any:
    from flask import Flask, request

    predict = _predictor(variant)
    app = Flask("bench")

    @app.post("/predict")
    def route() -> dict:
        return {"score": predict(request.get_json())}

    if variant == "passthrough":
        app.wsgi_app = _PassThroughWSGI(app.wsgi_app)  # type: ignore[method-assign]
    if variant == "otel":
        _otel_sdk()
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)
    elif variant.startswith("infersight"):
        from infersight.integrations.flask import instrument_app

        instrument_app(app)
    return app


if os.environ.get("BENCH_APP") == "fastapi":
    fastapi_app = build_fastapi(os.environ["BENCH_VARIANT"])
elif os.environ.get("BENCH_APP") == "flask":
    flask_app = build_flask(os.environ["BENCH_VARIANT"])

# -- the load generator (its own process) -------------------------------------------------------------


def load(url: str, seconds: float, concurrency: int) -> None:
    """Keep-alive POSTs from ``concurrency`` threads for ``seconds``; prints requests completed,
    failed, and this process's CPU seconds."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    stop = time.monotonic() + seconds
    counts = [0] * concurrency
    errors = [0] * concurrency

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < stop:
            try:
                conn.request("POST", parts.path, ROW, headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    counts[i] += 1
                else:
                    errors[i] += 1
            except OSError:
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sum(counts), sum(errors), time.process_time())


# -- the driver ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(root: int) -> tuple[float, float]:
    """User + system CPU of process ``root`` and its live descendants (gunicorn's workers): all
    their threads, and their main threads alone (the threads that serve requests in uvicorn and
    in gunicorn's sync workers; export and gRPC threads are the rest)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, tuple[float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/task/{entry}/stat") as f:
                main = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = ((int(fields[11]) + int(fields[12])) / tick, (int(main[11]) + int(main[12])) / tick)
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return (sum(times.get(pid, (0.0, 0.0))[0] for pid in tree), sum(times.get(pid, (0.0, 0.0))[1] for pid in tree))


def _start(
    app: str,
    variant: str,
    endpoint: str,
    http_endpoint: str = "",
    wrapper: list[str] | None = None,
    env_extra: dict[str, str] | None = None,
    startup_seconds: float = 20,
) -> tuple[subprocess.Popen[bytes], str]:
    """A variant's server (uvicorn or gunicorn) on a free loopback port, started under
    ``wrapper`` (e.g. valgrind) when given; returns once it accepts connections."""
    port = _free_port()
    env = dict(
        os.environ,
        BENCH_APP=app,
        BENCH_VARIANT=variant,
        BENCH_ENDPOINT=endpoint,
        BENCH_HTTP_ENDPOINT=http_endpoint,
        PYTHONPATH=os.pathsep.join([HERE, REPO]),
        OTEL_PYTHON_LOG_CORRELATION="false",
        **(env_extra or {}),
    )
    if app == "fastapi":
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "middleware:fastapi_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "middleware:flask_app",
        ]
    proc = subprocess.Popen(
        (wrapper or []) + argv, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/predict"
    deadline = time.monotonic() + startup_seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app}/{variant} did not start")


def _run_load(url: str, seconds: float, concurrency: int) -> tuple[int, int, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, str(seconds), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), float(out[2])


class Sample:
    """One variant, one round: throughput and CPU per request of the server and the load generator."""

    def __init__(
        self, done: int, errors: int, seconds: float, server_cpu: tuple[float, float], load_cpu: float
    ) -> None:
        self.rate = done / seconds
        self.errors = errors
        self.server_us = 1e6 * server_cpu[0] / max(done + errors, 1)
        self.request_thread_us = 1e6 * server_cpu[1] / max(done + errors, 1)
        self.load_us = 1e6 * load_cpu / max(done + errors, 1)


def _measure(proc: subprocess.Popen[bytes], url: str, seconds: float, concurrency: int) -> tuple[Sample, int]:
    # Warm up (imports, first-call caches, connection set-up) before the measured window.
    warm_done, warm_errors, _ = _run_load(url, 1, concurrency)
    cpu0 = _cpu_seconds(proc.pid)
    done, errors, load_cpu = _run_load(url, seconds, concurrency)
    cpu1 = _cpu_seconds(proc.pid)
    if errors:
        print(f"  warning: {errors} failed requests at {url}", file=sys.stderr)
    return (
        Sample(done, errors, seconds, (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]), load_cpu),
        warm_done + warm_errors + done + errors,
    )


def _counting_sink() -> Any:
    """The tests' loopback OTLP sink, keeping nothing but counts of spans and log records per
    instrumentation scope (a long run must not hoard hundreds of thousands of spans)."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from support.otlp_sink import OtlpSink

    class CountingSink(OtlpSink):
        def __init__(self) -> None:
            super().__init__(keep=False)
            self.counts: collections.Counter[str] = collections.Counter()

        def _add(self, bucket: list[Any], msg: Any) -> None:
            with self.lock:
                if bucket is self.traces:
                    for rs in msg.resource_spans:
                        for ss in rs.scope_spans:
                            self.counts[f"spans:{ss.scope.name}"] += len(ss.spans)
                elif bucket is self.logs:
                    for rl in msg.resource_logs:
                        for sl in rl.scope_logs:
                            self.counts[f"logs:{sl.scope.name}"] += len(sl.log_records)

    return CountingSink()


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.0f}-{max(xs):.0f}"


SUITES = {
    "fastapi": [
        "bare",
        "passthrough",
        "otel",
        "native",
        "infersight",
        "infersight-native-on",
        "infersight-no-monitor",
        "infersight-sampled",
    ],
    "flask": ["bare", "passthrough", "otel", "infersight", "infersight-no-monitor", "infersight-sampled"],
}
# (variant, against, floor) pairs printed for each suite.
RATIOS = {
    "fastapi": [
        ("infersight", "otel", 1.0),
        ("infersight", "bare", 0.85),
        ("passthrough", "bare", None),
        ("infersight", "passthrough", None),
        ("infersight-native-on", "otel", None),
        ("infersight-native-on", "native", None),
        ("infersight-sampled", "bare", None),
    ],
    "flask": [
        ("infersight", "otel", 1.0),
        ("infersight", "bare", 0.85),
        ("passthrough", "bare", None),
        ("infersight", "passthrough", None),
        ("infersight-sampled", "bare", None),
    ],
}


def run_suite(sink: Any, app: str, args: argparse.Namespace) -> None:
    variants = [v for v in SUITES[app] if args.variants is None or v in args.variants.split(",")]
    samples: dict[str, list[Sample]] = {v: [] for v in variants}
    emitted: dict[str, collections.Counter[str]] = {v: collections.Counter() for v in variants}
    served: dict[str, int] = {v: 0 for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]  # rotate the order
        for variant in order:
            before = collections.Counter(sink.counts)
            proc, url = _start(app, variant, sink.grpc_endpoint, sink.http_endpoint)
            try:
                sample, requests = _measure(proc, url, args.seconds, args.concurrency)
            finally:
                proc.send_signal(signal.SIGTERM)  # exits after flushing its exporters
                proc.wait(timeout=30)
            samples[variant].append(sample)
            served[variant] += requests
            emitted[variant].update(collections.Counter(sink.counts) - before)
    server = "uvicorn" if app == "fastapi" else "gunicorn (1 sync worker)"
    predict = f", predict busy {args.predict_us:g} us" if args.predict_us else ", trivial predict"
    print(
        f"\n{app} under {server}, {args.concurrency} keep-alive clients, {args.rounds} x {args.seconds:g}s "
        f"interleaved{predict}; median (min-max):"
    )
    print(
        f"  {'variant':24s} {'req/s':>6s} {'spread':>11s}  {'server CPU us/req':>17s} {'spread':>9s}  "
        f"{'of it request thread':>20s}  {'load-gen CPU us/req':>19s}  emitted per request"
    )
    rate = {v: statistics.median(s.rate for s in samples[v]) for v in variants}
    cpu = {v: statistics.median(s.server_us for s in samples[v]) for v in variants}
    for v in variants:
        rates = [s.rate for s in samples[v]]
        cpus = [s.server_us for s in samples[v]]
        load_us = statistics.median(s.load_us for s in samples[v])
        request_us = statistics.median(s.request_thread_us for s in samples[v])
        per = ", ".join(f"{n / max(served[v], 1):.2f} {k}" for k, n in sorted(emitted[v].items())) or "nothing"
        print(
            f"  {v:24s} {rate[v]:6.0f} {_spread(rates):>11s}  {cpu[v]:17.0f} {_spread(cpus):>9s}  "
            f"{request_us:20.0f}  {load_us:19.0f}  {per}"
        )
    print("  ratios: throughput (median req/s) and, in brackets, CPU (inverse of server CPU per request)")
    for variant, against, floor in RATIOS[app]:
        if variant not in rate or against not in rate:
            continue
        bar = f"   (floor {floor:.2f})" if floor else ""
        print(
            f"  {variant:>22s} / {against:<7s} = {rate[variant] / rate[against]:.2f} "
            f"[{cpu[against] / cpu[variant]:.2f}]{bar}"
        )


# -- in-process cost of one exchange ------------------------------------------------------------------


def micro(n: int = 20_000, repeat: int = 7) -> None:
    """µs of this thread's CPU per call, best of ``repeat`` batches of ``n``: the ASGI middleware
    around a raw ASGI app, the same app bare, and ``@monitor`` around the trivial predict."""
    sys.path.insert(0, REPO)
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    import infersight
    from infersight.integrations.asgi import InferSightMiddleware
    from infersight.testing import InMemoryMetricExporter

    class NullSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    infersight.configure(
        service_name="bench", span_exporter=NullSpans(), metric_exporter=InMemoryMetricExporter(), log_output="none"
    )

    class Route:
        path = "/predict"

    request = {"type": "http.request", "body": ROW, "more_body": False}
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")],
    }
    body = {"type": "http.response.body", "body": b'{"score": 0.5}'}
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"accept-encoding", b"identity"),
        (b"content-length", b"31"),
        (b"content-type", b"application/json"),
        (b"user-agent", b"Python-urllib/3.12"),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = Route
        await receive()
        await send(start)
        await send(body)

    async def receive() -> Any:
        return request

    async def send(message: Any) -> None:
        pass

    def scope(extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "method": "POST",
            "root_path": "",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "headers": headers + extra,
        }

    async def drive(target: Any, extra: list[tuple[bytes, bytes]], count: int) -> None:
        for _ in range(count):
            await target(scope(extra), receive, send)

    def best(fn: Any) -> float:
        fn(n // 10)
        runs = []
        for _ in range(repeat):
            t0 = time.thread_time()
            fn(n)
            runs.append((time.thread_time() - t0) / n)
        return min(runs) * 1e6

    traceparent = [(b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    middleware = InferSightMiddleware(app)
    monitored = infersight.monitor(model="bench", version="1")(_score)
    row = {"tenure": 12, "charges": 70.5}

    def loop(target: Any, extra: list[tuple[bytes, bytes]]) -> Any:
        return lambda count: asyncio.run(drive(target, extra, count))

    def calls(fn: Any) -> Any:
        def run(count: int) -> None:
            for _ in range(count):
                fn(row)

        return run

    print("in-process CPU per call (µs, best of 7 x 20000; null span exporter, in-memory metrics):")
    bare = best(loop(app, []))
    print(f"  raw ASGI app, bare                          {bare:6.1f}")
    print(f"  + infersight ASGI middleware                {best(loop(middleware, [])) - bare:6.1f}")
    print(f"  + infersight ASGI middleware, traceparent   {best(loop(middleware, traceparent)) - bare:6.1f}")
    plain = best(calls(_score))
    print(f"  predict, bare                               {plain:6.1f}")
    print(f"  + @monitor                                  {best(calls(monitored)) - plain:6.1f}")
    infersight.shutdown()
    encoding()


def encoding(batch: int = 512, repeat: int = 20) -> None:
    """µs per span to encode a batch of server spans to OTLP bytes: infersight's encoder against
    the OTel encoder given the same spans as SDK ``ReadableSpan`` objects."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from infersight._otlp_encode import encode_request
    from infersight._spans import FastTracer, LiteSpanProcessor

    resource = Resource.create({"service.name": "bench"})
    provider = TracerProvider(resource=resource)
    processor = LiteSpanProcessor(None)
    provider.add_span_processor(processor)
    tracer = FastTracer(provider, processor, "infersight", "0.1.0", expected=1)
    spans = []
    for i in range(batch):
        span = tracer.start_span(
            "POST",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "url.path": "/predict",
                "url.scheme": "http",
                "ml.request.id": f"{i:032x}",
                "server.address": "127.0.0.1",
                "server.port": 8000,
                "client.address": "127.0.0.1",
                "user_agent.original": "Python-urllib/3.12",
                "network.protocol.version": "1.1",
            },
        )
        span.set_attributes({"http.response.status_code": 200, "http.route": "/predict"})
        span.update_name("POST /predict")
        span.end_time = span.start_time + 1000  # ended without queueing
        spans.append(span)
    readable = [s.to_readable(resource, tracer.scope) for s in spans]
    scope = ("infersight", "0.1.0", None, None)

    def per_span(fn: Any) -> float:
        fn()
        t0 = time.thread_time()
        for _ in range(repeat):
            fn()
        return (time.thread_time() - t0) / repeat / batch * 1e6

    ours = per_span(lambda: encode_request(resource, scope, spans))
    theirs = per_span(lambda: encode_spans(readable).SerializeToString())
    print(
        f"OTLP encoding of a batch of {batch} server spans (µs per span): infersight {ours:.1f}, "
        f"OTel encoder {theirs:.1f} ({theirs / ours:.1f}x)"
    )


INSTRUCTION_VARIANTS = ["bare", "passthrough", "otel", "infersight", "infersight-no-monitor"]
_COUNTERS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")


def _counted_run(sink: Any, app: str, variant: str, requests: int, workdir: str) -> dict[str, int]:
    """Serve ``requests`` requests under cachegrind; the totals of every process of the server."""
    import http.client
    from urllib.parse import urlsplit

    out = os.path.join(workdir, f"{app}.{variant}.{requests}")
    valgrind = [
        shutil.which("valgrind") or "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        "--I1=32768,8,64",
        "--D1=32768,8,64",
        "--LL=2097152,16,64",
        "--trace-children=yes",
        f"--cachegrind-out-file={out}.%p",
    ]
    proc, url = _start(
        app,
        variant,
        sink.grpc_endpoint,
        sink.http_endpoint,
        wrapper=valgrind,
        env_extra={"PYTHONHASHSEED": "0"},
        startup_seconds=300,
    )
    port = urlsplit(url).port
    failures: list[str] = []
    try:

        def client(count: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            try:
                for _ in range(count):  # gunicorn's sync worker closes each connection; http.client reopens it
                    conn.request("POST", "/predict", ROW, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append(f"HTTP {resp.status}")
            except OSError as exc:
                failures.append(repr(exc))

        threads = [threading.Thread(target=client, args=(requests // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    if failures:  # the counts would cover fewer requests than they are divided by
        raise RuntimeError(f"{app}/{variant} under valgrind: {len(failures)} failed, e.g. {failures[0]}")
    totals = dict.fromkeys(_COUNTERS, 0)
    prefix = os.path.basename(out) + "."
    for name in os.listdir(workdir):
        if name.startswith(prefix):
            with open(os.path.join(workdir, name)) as f:
                for line in f:
                    if line.startswith("summary:"):
                        for key, value in zip(_COUNTERS, line.split()[1:]):
                            totals[key] += int(value)
    return totals


def instructions(apps: list[str], variants: list[str], counts: tuple[int, int]) -> None:
    """Per-request instructions and cache misses of each variant's server, from cachegrind."""
    import tempfile

    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind (Debian: apt-get install valgrind)", file=sys.stderr)
        sys.exit(2)
    sink = _counting_sink()
    with sink, tempfile.TemporaryDirectory() as workdir:
        for app in apps:
            print(f"\n{app}: per request, from cachegrind ({counts[1]} - {counts[0]} requests, 4 keep-alive clients)")
            print(
                f"  {'variant':24s} {'instructions':>12s} {'I1 misses':>10s} {'D1 misses':>10s}   instructions "
                f"bare / variant"
            )
            per: dict[str, dict[str, float]] = {}
            for variant in variants:
                if variant not in SUITES[app]:
                    continue
                low, high = (_counted_run(sink, app, variant, n, workdir) for n in counts)
                per[variant] = {k: (high[k] - low[k]) / (counts[1] - counts[0]) for k in _COUNTERS}
                row = per[variant]
                ratio = f"{per['bare']['Ir'] / row['Ir']:.2f}" if "bare" in per else "-"
                print(
                    f"  {variant:24s} {row['Ir']:12.0f} {row['I1mr']:10.0f} {row['D1mr'] + row['D1mw']:10.0f}   {ratio}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=sorted(SUITES), default=None)
    parser.add_argument("--micro", action="store_true", help="in-process cost of one exchange, no servers")
    parser.add_argument("--instructions", action="store_true", help="instructions per request under cachegrind")
    parser.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated subset (default: all; with --instructions: {','.join(INSTRUCTION_VARIANTS)})",
    )
    parser.add_argument(
        "--predict-us",
        type=float,
        default=0.0,
        help="make predict hold the GIL busy this many µs (default 0: the issue's trivial predict)",
    )
    parser.add_argument("--requests", default="400,1600", help="with --instructions: the two request counts")
    parser.add_argument("--load", nargs=3, metavar=("URL", "SECONDS", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], float(args.load[1]), int(args.load[2]))
        return
    if args.micro:
        micro()
        return
    if args.instructions:
        low, high = (int(n) for n in args.requests.split(","))
        instructions(
            [args.only] if args.only else list(SUITES),
            (args.variants or ",".join(INSTRUCTION_VARIANTS)).split(","),
            (low, high),
        )
        return
    os.environ["BENCH_PREDICT_US"] = str(args.predict_us)  # the servers inherit it
    sink = _counting_sink()
    with sink:
        for app in SUITES:
            if not args.only or app == args.only:
                run_suite(sink, app, args)


if __name__ == "__main__":
    main()
