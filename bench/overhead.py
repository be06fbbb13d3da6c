"""SDK overhead, measured side by side in one run (issues 2 and 12). Prints ratios, asserts nothing.

0. The shapes predict functions take (``exporter="none"``: the request path and the statistics
   work in the SDK's threads, no export), each at 1, 10, 64, 1,000 and 100,000 rows × 50
   features: dict, 1-D and 2-D numpy, DataFrame, list of dicts, dict of columns, pydantic.
   Per call: µs with ``@monitor``, µs of the bare predict, and infersight's own cost (the
   difference). Floors: a one-row input of any shape costs <= 1.5 × the same row as a dict;
   a batch of n × 50 costs <= 25 µs + 1 µs a row.
1. ``@monitor`` on a 1-row, 20-feature predict (payload logs at the default sample rate)
   ÷ the same function inside a span of a plain OTel SDK set-up (TracerProvider +
   BatchSpanProcessor + OTLP exporter to the same receiver), what a user without infersight
   has                                                                  (floor: <= 1.5)
2. sketching a 1000 × 50 float batch ÷ one ``np.nanmean(X, axis=0)``       (floor: <= 10)
3. RSS growth over 1,000,000 monitored calls, in fresh processes, median (floor: <= 5 MB)
4. ``record_outcomes`` (every call's prediction kept for the quality join): the 1-row,
   20-feature dict call with outcomes off and on, rounds interleaved in one run, and the
   export thread's cost per call of encoding and emitting the buffered outcomes

Run: python bench/overhead.py [--calls N] [--rss-calls N] [--rss-runs N] [--only shapes,span,batch,rss,outcomes]
     [--sizes 1,10,...] [--clock wall|cpu]
Exporters point at a loopback OTLP receiver started here, so export work is real. The span
queue is made large enough (OTEL_BSP_MAX_QUEUE_SIZE, unless set) that neither variant drops
spans: with the default 2048 both drop most spans at this call rate, and each drop costs a
Python logging warning inside the OTel SDK, which measures the drop path, not telemetry.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

if "--rss-only" not in sys.argv:
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "65536")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

import infersight  # noqa: E402
from infersight.feature_stats import FeatureStats  # noqa: E402
from infersight.payload import normalize_inputs  # noqa: E402
from support.otlp_sink import OtlpSink  # noqa: E402

FEATURES = [f"x{i}" for i in range(20)]
WEIGHTS = np.linspace(-1, 1, 20)


def model(row: dict) -> float:
    # A realistic 1-row predict: dict → vector → logistic regression.
    x = np.fromiter((row[k] for k in FEATURES), dtype=np.float64, count=20)
    return float(1.0 / (1.0 + np.exp(-x @ WEIGHTS)))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def per_call(fn, row, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn(row)
    return (time.perf_counter() - t) / n


# -- 0. shapes -------------------------------------------------------------------------------

WIDTH = 50
NAMES = [f"x{i}" for i in range(WIDTH)]
SIZES = (1, 10, 64, 1_000, 100_000)


def _shape_inputs(n: int) -> dict[str, Any]:
    """The same ``n`` rows of 50 float features in every shape that can hold ``n`` rows."""
    import pandas as pd
    import pydantic

    Row = pydantic.create_model("Row", **{k: (float, ...) for k in NAMES})  # type: ignore[call-overload]
    X = np.random.default_rng(n).normal(size=(n, WIDTH))
    rows = [dict(zip(NAMES, r)) for r in X.tolist()]
    out: dict[str, Any] = {}
    if n == 1:
        out["dict"] = rows[0]
        out["1-D numpy"] = X[0].copy()
        out["pydantic model"] = Row(**rows[0])
    out["2-D numpy"] = X
    out["DataFrame"] = pd.DataFrame(X, columns=NAMES)
    out["list of dicts"] = rows
    out["dict of columns"] = {k: X[:, i].copy() for i, k in enumerate(NAMES)}
    out["list of pydantic"] = [Row(**r) for r in rows]
    return out


def _predict(x: Any) -> Any:
    """A trivial model: one number per row, as ``model.predict`` answers (a float for a dict)."""
    if type(x) is dict:
        v = next(iter(x.values()))
        return 0.5 if isinstance(v, float) else np.full(len(v), 0.5)
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return np.full(1, 0.5)
    return np.full(len(x) if isinstance(x, list) else x.shape[0] if hasattr(x, "shape") else 1, 0.5)


# Wall time by default; ``--clock cpu`` times the process's CPU (all its threads, so the SDK's
# statistics work is in), which other processes on a busy machine do not inflate as much.
_CLOCK = time.perf_counter


def _time(fn: Callable[[Any], Any], x: Any, seconds: float = 0.25, settle: Callable[[], Any] | None = None) -> float:
    """Best of 5 timed loops of about ``seconds`` each (noise only adds time), µs a call.
    ``settle`` ends each loop (inside the timing): for the monitored function, a flush, so
    statistics work the loop left to the SDK's threads is in the loop's figure (without it,
    the best of 5 picks a loop whose last compaction ran after the clock stopped)."""
    fn(x)  # the first call sets things up (a model's series, its buffers): not a call's cost
    t = time.perf_counter()
    fn(x)
    once = max(time.perf_counter() - t, 1e-7)
    n = max(1, min(20_000, int(seconds / once)))
    for _ in range(min(n, 50)):
        fn(x)
    if settle is not None:
        settle()

    def loop() -> None:
        for _ in range(n):
            fn(x)
        if settle is not None:
            settle()

    return min(timeit.repeat(loop, number=1, repeat=5, timer=_CLOCK)) / n * 1e6


def shapes(sizes: tuple[int, ...]) -> None:
    infersight.configure(exporter="none", log_output="none")
    named = infersight.monitor(model="shapes", version="1", features=NAMES)(_predict)
    print("0) shapes, 50 features, exporter=none (infersight's cost = monitored - predict alone)")
    print(f"   {'shape':<18} {'rows':>7} {'monitored':>11} {'predict':>9} {'ours':>9}   ratio")
    dict_cost = None
    for n in sizes:
        for shape, x in _shape_inputs(n).items():
            fn = (
                named
                if "numpy" in shape
                else infersight.monitor(model="shapes-" + shape.replace(" ", "-"), version="1")(_predict)
            )
            mon = _time(fn, x, settle=infersight.flush)
            bare = _time(_predict, x)
            ours = mon - bare
            if n == 1:
                if shape == "dict":
                    dict_cost = ours
                ratio = f"{ours / dict_cost:5.2f} of the dict row (floor <= 1.5)"
            else:
                floor = 25 + n
                ratio = f"{ours / floor:5.2f} of the floor {floor:,} µs"
            print(f"   {shape:<18} {n:>7,} {mon:>9.1f}µs {bare:>7.1f}µs {ours:>7.1f}µs   {ratio}")
        infersight.flush()
    infersight.shutdown()


# -- 1-3 -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rss-calls", type=int, default=1_000_000)
    ap.add_argument("--rss-runs", type=int, default=3)
    ap.add_argument("--only", default="shapes,span,batch,rss,outcomes")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="shapes: time wall clock (default) or the process's CPU time, all threads (steadier on a busy machine)",
    )
    ap.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shapes-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_only:
        rss_only(args.rss_calls)
        return
    global _CLOCK
    if args.shapes_only:
        _CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
        shapes(tuple(int(v) for v in args.sizes.split(",")))
        return
    parts = set(args.only.split(","))
    if args.clock == "cpu":  # section 4 reads it too
        _CLOCK = time.process_time
    if "shapes" in parts:
        # its own process: exporter=none, and no state left from the other parts
        cmd = [sys.executable, __file__, "--shapes-only", "--sizes", args.sizes, "--clock", args.clock]
        subprocess.run(cmd, check=True)

    sink = OtlpSink(keep=False).start()
    if parts & {"span", "batch"}:
        infersight.configure(endpoint=sink.grpc_endpoint, protocol="grpc", log_output="none", metric_export_interval=5)
    if "span" in parts:
        # What a user without infersight has: the OTel SDK's own provider, batch processor and
        # OTLP exporter, sending to the same receiver.
        plain = TracerProvider()
        plain.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink.grpc_endpoint, insecure=True)))
        tracer = plain.get_tracer("bench")
        monitored = infersight.monitor(model="bench", version="1")(model)

        def bare(row: dict) -> float:
            with tracer.start_as_current_span("predict", attributes={"ml.model.name": "bench"}):
                return model(row)

        rng = np.random.default_rng(0)
        row = {k: float(v) for k, v in zip(FEATURES, rng.normal(size=20))}
        for fn in (model, bare, monitored):
            per_call(fn, row, 2000)  # warm up
        t_plain, t_bare, t_mon = [], [], []
        for _ in range(args.rounds):  # interleaved, so drift in machine speed hits all three
            t_plain.append(per_call(model, row, args.calls))
            t_bare.append(per_call(bare, row, args.calls))
            t_mon.append(per_call(monitored, row, args.calls))
        plain_t, b, m = (statistics.median(t) for t in (t_plain, t_bare, t_mon))
        print(f"1) 1-row, 20-feature predict, payload_sample_rate={0.01:.2f}")
        print(f"   predict alone                      {plain_t * 1e6:8.2f} µs/call")
        print(f"   in a span of a plain OTel SDK set-up {b * 1e6:6.2f} µs/call")
        print(f"   @infersight.monitor                {m * 1e6:8.2f} µs/call")
        print(f"   ratio monitor / plain OTel span = {m / b:.3f}   (floor <= 1.5)")
        plain.shutdown()

    if "batch" in parts:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(1000, 50))
        X[rng.random(X.shape) < 0.01] = np.nan
        norm = normalize_inputs(X)  # what @monitor hands the statistics for a 2-D batch
        acc = FeatureStats()

        def buffer_batch() -> None:
            # What the request path does with a batch: a copy into the model's buffer (the
            # buffer is handed over and dropped here, so no compaction lands in this timing).
            acc.record_columns(("bench", "1"), norm)
            acc._state.take_buffers()  # noqa: SLF001 - bench only

        def sketch_batch() -> None:
            # The statistics work for a batch: buffered, then every column sketched, NaN/Inf
            # counted (what the exporter thread does with buffered batches).
            acc.record_columns(("bench", "1"), norm)
            acc.compact()

        def export_batch() -> None:
            acc.record_columns(("bench", "1"), norm)
            acc.drain(0, 1)  # plus the export-time work: OTel data points for every series

        def nanmean() -> None:
            np.nanmean(X, axis=0)

        infersight.flush()  # section 1's export work done before timing section 2
        tb, ts, te, tn = [], [], [], []
        for _ in range(args.rounds):
            for fn, out in ((buffer_batch, tb), (sketch_batch, ts), (export_batch, te), (nanmean, tn)):
                # best of 5 batches of 10 calls: noise from other threads and processes only adds time
                out.append(min(timeit.repeat(fn, number=10, repeat=5)) / 10)
            acc.drain(0, 1)
        bb, s, e, n = statistics.median(tb), statistics.median(ts), statistics.median(te), statistics.median(tn)
        print("2) 1000 x 50 float batch (1% NaN)")
        print(f"   request path (copied into the buffer) {bb * 1e3:8.3f} ms")
        print(f"   buffered and sketched                 {s * 1e3:8.3f} ms")
        print(f"   sketch + export-time data points      {e * 1e3:8.3f} ms")
        print(f"   np.nanmean(X, axis=0)                 {n * 1e3:8.3f} ms")
        print(f"   ratio sketch / nanmean = {s / n:.2f}   (floor <= 10); with export work {e / n:.2f}")

    if "outcomes" in parts:
        outcomes(sink, args.calls, args.rounds)
    if parts & {"span", "batch", "outcomes"}:
        infersight.shutdown()
    sink.stop()
    if "rss" in parts:
        # Memory runs in fresh processes with the SDK's default span queue (2048), which fills
        # in the warm-up: the growth measured is then infersight's, not the OTel queue filling
        # up. The median of several runs: one run's figure moves with the allocator's luck.
        env = {k: v for k, v in os.environ.items() if k != "OTEL_BSP_MAX_QUEUE_SIZE"}
        growth = []
        for _ in range(args.rss_runs):
            out = subprocess.run(
                [sys.executable, __file__, "--rss-only", "--rss-calls", str(args.rss_calls)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(out, end="")
            growth.append(float(out.rsplit("growth", 1)[1].split()[0]))
        print(f"3) RSS growth, median of {len(growth)} runs: {statistics.median(growth):+.2f} MB   (floor <= 5 MB)")


def outcomes(sink: OtlpSink, calls: int, rounds: int) -> None:
    """Section 4: the request-path cost of keeping every call's outcome, and the drain's.

    The switch is flipped on the live runtime's settings (``record_outcomes`` is read per
    call), so both variants run in the same process state; many short paired rounds, the
    order alternating, and the median of the paired differences, because on a shared machine
    the level drifts by more than the difference measured."""
    import dataclasses
    import math

    from infersight import _state
    from infersight._outcomes import SHIP_AT

    infersight.configure(
        endpoint=sink.grpc_endpoint,
        protocol="grpc",
        log_output="none",
        # no export inside a timed loop: the drain (measured below) is the export thread's work,
        # and on a 2-core machine it would take the GIL from the timed loop
        metric_export_interval=3600,
    )
    rt = _state.get_runtime()
    monitored = infersight.monitor(model="bench-outcomes", version="1")(model)
    rng = np.random.default_rng(1)
    row = {k: float(v) for k, v in zip(FEATURES, rng.normal(size=20))}
    per_call(monitored, row, 2000)  # warm up
    infersight.flush()
    # loops short enough that the buffer never reaches the size that wakes the export thread
    # (SHIP_AT calls): the request path alone is timed; the drain is timed below
    n = min(SHIP_AT - 1, max(1000, calls // 4))

    def timed(on: bool) -> float:
        rt.settings = dataclasses.replace(rt.settings, record_outcomes=on)
        best = math.inf
        for _ in range(3):
            rt.outcomes.take()  # drained outside the timing
            t = _CLOCK()
            for _ in range(n):
                monitored(row)
            best = min(best, _CLOCK() - t)
        return best / n

    t_off, t_on, diffs = [], [], []
    for r in range(max(rounds, 5) * 6):
        got = {on: timed(on) for on in ((False, True) if r % 2 == 0 else (True, False))}
        t_off.append(got[False])
        t_on.append(got[True])
        diffs.append(got[True] - got[False])
    off, on_, d = statistics.median(t_off), statistics.median(t_on), statistics.median(diffs)
    # the export thread's side: encode and export a full buffer of one-row outcomes
    rt.settings = dataclasses.replace(rt.settings, record_outcomes=True)
    m = 50_000
    # one drain of all, timed here (nothing shipped early, nothing encoded on the request path)
    (ship_at, hard_at), (rt.outcomes.ship_at, rt.outcomes.hard_at) = (
        (rt.outcomes.ship_at, rt.outcomes.hard_at),
        (10**9, 10**9),
    )
    for _ in range(m):
        monitored(row)
    from infersight._outcomes import encode_outcomes

    held = list(rt.outcomes.items)
    t = time.perf_counter()
    for body in encode_outcomes(held):
        json.dumps(body, separators=(",", ":"))
    encode = (time.perf_counter() - t) / len(held)
    t = time.perf_counter()
    shipped = rt.ship_outcomes()
    drain = (time.perf_counter() - t) / max(shipped, 1)
    # restored only now: a wake of the export thread (the rows' compaction) would otherwise
    # ship the held calls itself while they are timed here
    rt.outcomes.ship_at, rt.outcomes.hard_at = ship_at, hard_at
    infersight.flush()
    print(f"4) record_outcomes on the 1-row, 20-feature dict call ({len(diffs)} paired rounds of {n} calls)")
    print(f"   record_outcomes=false              {off * 1e6:8.2f} µs/call (median)")
    print(f"   record_outcomes=true               {on_ * 1e6:8.2f} µs/call (median)")
    print(f"   request-path cost, median of paired differences {d * 1e6:+.2f} µs/call ({d / off * 100:+.1f}%)")
    print(f"   export thread: encode to JSON      {encode * 1e6:8.2f} µs/call")
    print(f"   export thread: encode + export     {drain * 1e6:8.2f} µs/call ({shipped} calls in one drain,")
    print("                                      gRPC to a receiver in this process, its decoding included)")


def rss_only(calls: int) -> None:
    sink = OtlpSink(keep=False).start()
    infersight.configure(endpoint=sink.grpc_endpoint, protocol="grpc", log_output="none", metric_export_interval=5)
    monitored = infersight.monitor(model="bench", version="1")(model)
    row = {k: float(v) for k, v in zip(FEATURES, np.random.default_rng(0).normal(size=20))}
    # Warm-up so one-time allocations (buffers, caches, span queue, first export) are not growth.
    per_call(monitored, row, 50_000)
    infersight.flush()
    gc.collect()
    before = rss_mb()
    done = 0
    while done < calls:
        step = min(100_000, calls - done)
        per_call(monitored, row, step)
        done += step
    infersight.flush()
    gc.collect()
    after = rss_mb()
    print(
        f"   run: RSS over {calls:,} calls: {before:.1f} MB -> {after:.1f} MB, "
        f"growth {after - before:+.2f} MB   (floor <= 5 MB)"
    )
    infersight.shutdown()
    sink.stop()


if __name__ == "__main__":
    main()
