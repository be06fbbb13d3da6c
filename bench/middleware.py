"""HTTP middleware throughput, side by side in one run (issue 3). Prints ratios, asserts nothing.

The same trivial-predict app, served by a real server in its own process on 127.0.0.1 and loaded
by a separate load-generator process (threads, keep-alive connections, fixed duration):

* FastAPI under uvicorn: bare; opentelemetry-instrumentation-fastapi (OTLP to the sink);
  infersight middleware + ``@monitor`` (OTLP to the sink), with FastAPI's native telemetry on
  (its default once a tracer provider exists) and off.
* Flask under gunicorn (1 sync worker): bare; opentelemetry-instrumentation-flask;
  infersight middleware + ``@monitor``.

Floors: infersight ÷ OTel >= 1.0 and infersight ÷ bare >= 0.85. Variants are interleaved round
by round and the median of the rounds is reported, to spread machine noise evenly.

Run: python bench/middleware.py [--seconds 4] [--rounds 3] [--concurrency 8]
"""


import argparse
import math
import os
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


def _score(row: dict) -> float:
    return 1.0 / (1.0 + math.exp(-(0.05 * row["tenure"] - 0.01 * row["charges"])))


def _otel_sdk() -> None:
    """What an OTel user runs: an SDK tracer provider exporting OTLP/gRPC in batches."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["BENCH_ENDPOINT"], insecure=True)))
    trace.set_tracer_provider(provider)


def _predictor(variant: str) -> Any:
    if variant.startswith("infersight"):
        import infersight

        infersight.configure(service_name="bench", endpoint=os.environ["BENCH_ENDPOINT"], protocol="grpc",
                             log_output="none")
        return infersight.monitor(model="bench", version="1")(_score)
    return _score


def build_fastapi(variant: str) -> Any:
    from fastapi import FastAPI, Request

    predict = _predictor(variant)
    telemetry = {"tracing": False, "metrics": False, "logs": False} if variant == "infersight-native-off" else None
    app = FastAPI(telemetry=telemetry) if telemetry else FastAPI()

    @app.post("/predict")
    async def route(request: Request) -> dict:
        return {"score": predict(await request.json())}

    if variant == "otel":
        _otel_sdk()
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
    elif variant.startswith("infersight"):
        from infersight.integrations.fastapi import instrument_app

        instrument_app(app)
    return app


def build_flask(variant: str) -> Any:
    from flask import Flask, request

    predict = _predictor(variant)
    app = Flask("bench")

    @app.post("/predict")
    def route() -> dict:
        return {"score": predict(request.get_json())}

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
    """Keep-alive POSTs from ``concurrency`` threads for ``seconds``; prints requests completed."""
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
    print(sum(counts), sum(errors))


# -- the driver ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(app: str, variant: str, endpoint: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, BENCH_APP=app, BENCH_VARIANT=variant, BENCH_ENDPOINT=endpoint,
               PYTHONPATH=os.pathsep.join([HERE, REPO]), OTEL_PYTHON_LOG_CORRELATION="false")
    if app == "fastapi":
        argv = [sys.executable, "-m", "uvicorn", "middleware:fastapi_app", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]
    else:
        argv = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                "middleware:flask_app"]
    proc = subprocess.Popen(argv, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/predict"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app}/{variant} did not start")


def _measure(url: str, seconds: float, concurrency: int) -> float:
    # Warm up (imports, first-call caches, connection set-up) before the measured window.
    subprocess.run([sys.executable, __file__, "--load", url, "1", str(concurrency)], capture_output=True, check=True)
    out = subprocess.run([sys.executable, __file__, "--load", url, str(seconds), str(concurrency)],
                         capture_output=True, text=True, check=True).stdout.split()
    done, errors = int(out[0]), int(out[1])
    if errors:
        print(f"  warning: {errors} failed requests at {url}", file=sys.stderr)
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["fastapi", "flask"], default=None)
    parser.add_argument("--load", nargs=3, metavar=("URL", "SECONDS", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], float(args.load[1]), int(args.load[2]))
        return

    sys.path.insert(0, os.path.join(REPO, "tests"))
    from support.otlp_sink import OtlpSink

    suites = {
        "fastapi": ["bare", "otel", "infersight", "infersight-native-off"],
        "flask": ["bare", "otel", "infersight"],
    }
    with OtlpSink() as sink:
        for app, variants in suites.items():
            if args.only and app != args.only:
                continue
            rates: dict[str, list[float]] = {v: [] for v in variants}
            for r in range(args.rounds):
                order = variants[r % len(variants):] + variants[: r % len(variants)]  # rotate the order
                for variant in order:
                    proc, url = _start(app, variant, sink.grpc_endpoint)
                    try:
                        rates[variant].append(_measure(url, args.seconds, args.concurrency))
                    finally:
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(timeout=20)
            med = {v: statistics.median(x) for v, x in rates.items()}
            server = "uvicorn" if app == "fastapi" else "gunicorn (1 sync worker)"
            print(f"\n{app} under {server}, {args.concurrency} keep-alive clients, "
                  f"{args.rounds} x {args.seconds:g}s interleaved, median req/s:")
            for v in variants:
                print(f"  {v:24s} {med[v]:8.0f}   rounds: {', '.join(f'{x:.0f}' for x in rates[v])}")
            print(f"  infersight / otel  = {med['infersight'] / med['otel']:.2f}   (floor 1.00)")
            print(f"  infersight / bare  = {med['infersight'] / med['bare']:.2f}   (floor 0.85)")
            if "infersight-native-off" in med:
                print(f"  infersight (FastAPI native telemetry off) / otel = {med['infersight-native-off'] / med['otel']:.2f}, "
                      f"/ bare = {med['infersight-native-off'] / med['bare']:.2f}")
        spans = len(sink.spans())
        print(f"\nspans received by the loopback OTLP sink during the run: {spans}")


if __name__ == "__main__":
    main()
