"""Processor benchmark: ingest throughput, bytes per stored feature-window, range-query time.

Prints figures from one run (no pass/fail; the floors are in BENCHMARKS.md):

1. OTLP/HTTP protobuf ingest on loopback: exponential-histogram data points per second, with
   the processor (a separate process, the real server) pinned to one core
   (``sched_setaffinity``) and the HTTP clients on the others; acknowledged means committed to
   SQLite (WAL, synchronous=FULL).
2. The same pipeline in-process, stage by stage, on the same requests: decode (protobuf →
   columns, screened), fold (a writer batch of 4 requests → base windows), commit (window rows
   serialised and committed), and compaction (base windows rolled up into 1 h and 1 d, which
   runs off the acknowledgement path every maintenance interval).
3. Bytes per stored feature-window: SQLite file size over compacted window rows.
4. Query time for a 24 h range of 1-minute windows of one feature: with the default roll-ups
   (1 h, 1 d) once compacted, before compaction (every minute still a base row not rolled up:
   the worst case), and with base windows only (1440 windows merged).
5. One evaluation pass over 100 models x 100 features: each model's newest closed 1-minute
   window scored against its pushed reference (drift and data quality per feature, findings
   and per-window state stored), on one core (``sched_setaffinity``); the steady-state pass
   (one new window per model, methods fitted in an earlier pass) and the first pass (fitting
   included); peak memory of a pass (tracemalloc) and the process's peak RSS.

Run: python bench/processor.py [--seconds 10] [--points-per-request 2000]
     python bench/processor.py --only evaluation [--models 100 --features 100] [--profile FILE]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.points import MetricPoint
from infersight.processor.ingest.receiver import Receiver
from infersight.processor.ingest.writer import Ingestor, request_digest
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage import WriteBatch, open_storage
from infersight.processor.storage.codec import encode_window
from infersight.stats.sketch import ExpHistogram


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_name(seq: int) -> bytes:
    return f"bench-{seq:012d}".encode()


def build_request(seq: int, points: int, sketches: list[ExpHistogram], models: int = 10) -> bytes:
    """One request of ``points`` exponential-histogram points (features × models)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add(key="service.name")
    kv.value.string_value = service_name(seq).decode()
    metric = rm.scope_metrics.add().metrics.add(name="ml.feature.value")
    eh = metric.exponential_histogram
    eh.aggregation_temporality = 1
    now = time.time_ns()
    for i in range(points):
        s = sketches[i % len(sketches)]
        dp = eh.data_points.add(
            start_time_unix_nano=now - 10**9,
            time_unix_nano=now + seq,
            count=s.count,
            sum=s.sum,
            scale=s.scale,
            zero_count=s.zero_count,
            min=s.min,
            max=s.max,
        )
        dp.positive.offset = s.positive.offset
        dp.positive.bucket_counts.extend(s.positive.counts.tolist())
        for k, v in (
            ("ml.model.name", f"model-{i % models}"),
            ("ml.model.version", "1"),
            ("ml.feature.name", f"f{i // models}"),
        ):
            a = dp.attributes.add(key=k)
            a.value.string_value = v
    return req.SerializeToString()


def bench_ingest(seconds: float, per_request: int, clients: int) -> None:
    tmp = tempfile.mkdtemp(prefix="infersight-bench-")
    ports = {k: _free_port() for k in ("otlp_grpc", "otlp_http", "web")}
    cmd = [
        sys.executable,
        "-m",
        "infersight.processor",
        "--db",
        f"sqlite:///{tmp}/bench.db",
        "--otlp-grpc",
        f"127.0.0.1:{ports['otlp_grpc']}",
        "--otlp-http",
        f"127.0.0.1:{ports['otlp_http']}",
        "--web",
        f"127.0.0.1:{ports['web']}",
        "--log-level",
        "WARNING",
    ]
    cpus = sorted(os.sched_getaffinity(0))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}))
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{ports['web']}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        rng = np.random.default_rng(0)
        sketches = [ExpHistogram.from_values(rng.lognormal(3, 1, 500)) for _ in range(64)]
        url = f"http://127.0.0.1:{ports['otlp_http']}/v1/metrics"
        sent = [0] * clients
        stop = threading.Event()

        # Building requests costs the client time: pre-build a pool, and make every body sent
        # distinct by writing a sequence number into its service.name (a resent body would be
        # acknowledged as a duplicate without being stored again, flattering the figure).
        pool = [build_request(10**7 + i, per_request, sketches) for i in range(50)]

        def client_pool(c: int) -> None:
            i = c
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    k = i % len(pool)
                    # Same length, so no protobuf length prefix changes.
                    body = pool[k].replace(service_name(10**7 + k), service_name(2 * 10**8 + i), 1)
                    r = http.post(url, content=body, headers={"content-type": "application/x-protobuf"})
                    i += clients
                    if r.status_code == 200:
                        sent[c] += per_request

        threads = [threading.Thread(target=client_pool, args=(c,)) for c in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        total = sum(sent)
        print(f"ingest  OTLP/HTTP protobuf, processor on 1 core, {clients} clients, {per_request} points/request:")
        print(
            f"        {total} exponential-histogram points acknowledged in {elapsed:.1f} s = "
            f"{total / elapsed:,.0f} points/s (floor 50,000)"
        )
    finally:
        proc.terminate()
        proc.wait(60)
        os.sched_setaffinity(0, set(cpus))


def bench_stages(per_request: int, requests: int = 40, per_batch: int = 4) -> None:
    """Each stage of the ingest pipeline alone, in this process, on distinct requests."""
    rng = np.random.default_rng(0)
    sketches = [ExpHistogram.from_values(rng.lognormal(3, 1, 500)) for _ in range(64)]
    bodies = [build_request(2 * 10**7 + i, per_request, sketches) for i in range(requests)]
    tmp = tempfile.mkdtemp(prefix="infersight-bench-")
    sizes = (60, 3600, 86400)
    store = open_storage(f"sqlite:///{tmp}/stages.db", sizes)
    ingestor = Ingestor(store, window_sizes=sizes, commit_interval=0)
    receiver = Receiver(ingestor, Registry())
    n = per_request * requests
    t = time.perf_counter()
    decoded = [receiver.decode("metrics", b, "application/x-protobuf") for b in bodies]
    t_decode = time.perf_counter() - t
    assert sum(d.size for d in decoded) == n and not any(d.rejected for d in decoded)
    batches = [decoded[i : i + per_batch] for i in range(0, requests, per_batch)]
    t_fold = t_commit = 0.0
    for batch in batches:
        t = time.perf_counter()
        agg = aggregate([], [], [], sizes[:1], [c for d in batch for c in d.columns])
        t_fold += time.perf_counter() - t
        t = time.perf_counter()
        store.write(WriteBatch(agg.windows, digests=[request_digest("metrics", str(id(d)).encode()) for d in batch]))
        t_commit += time.perf_counter() - t
    rows = store.row_count()
    t = time.perf_counter()
    store.compact(None)
    t_compact = time.perf_counter() - t
    windows = store._read("SELECT COUNT(*) FROM stats WHERE size=?", (sizes[0],))[0][0]
    print(
        f"stages  in-process, {requests} requests of {per_request} points, {per_batch} requests per commit "
        f"(SQLite, synchronous=FULL):"
    )
    print(
        f"        decode {n / t_decode:,.0f} points/s | fold into windows {n / t_fold:,.0f} points/s | "
        f"commit {n / t_commit:,.0f} points/s ({rows:,} window rows)"
    )
    print(
        f"        compaction (off the ack path: {rows:,} rows folded into {windows:,} base windows, rolled up "
        f"into 1 h and 1 d): {t_compact:.2f} s = {rows / t_compact:,.0f} rows/s = {n / t_compact:,.0f} points/s"
    )
    store.close()
    # The costly case for compaction: every point in a window of its own (one row, one point).
    store = open_storage(f"sqlite:///{tmp}/single.db", sizes)
    for r, d in enumerate(decoded[:3]):
        for c in d.columns:
            c.time_ns = c.time_ns + r * sizes[0] * 10**9
        store.write(WriteBatch(aggregate([], [], [], sizes[:1], d.columns).windows))
    rows = store.row_count()
    t = time.perf_counter()
    store.compact(None)
    t_single = time.perf_counter() - t
    print(
        f"        compaction, one point per window: {rows:,} rows in {t_single:.2f} s = {rows / t_single:,.0f} rows/s "
        f"({t_single / rows * 1e6:.0f} µs per point)"
    )
    store.close()


def feature_day(
    store_url: str, sizes: tuple[int, ...], buckets_from: int = 500, compact: bool = True
) -> tuple[object, int]:
    store = open_storage(store_url, sizes)
    t0 = 1_700_000_000 - 1_700_000_000 % 86400
    rng = np.random.default_rng(1)
    points = []
    for minute in range(1440):
        t = (t0 + 60 * minute + 1) * 10**9
        points.append(
            MetricPoint(
                "ml.feature.value",
                "exponential_histogram",
                {},
                {"ml.model.name": "m", "ml.model.version": "1", "ml.feature.name": "age"},
                t - 10**9,
                t,
                sketch=ExpHistogram.from_values(rng.lognormal(3, 1, buckets_from)),
            )
        )
        points.append(
            MetricPoint(
                "ml.feature.missing",
                "sum",
                {},
                {"ml.model.name": "m", "ml.model.version": "1", "ml.feature.name": "age", "ml.missing.kind": "nan"},
                t - 10**9,
                t,
                monotonic=True,
                value=2.0,
            )
        )
    for i in range(0, len(points), 200):
        agg = aggregate(points[i : i + 200], [], [], sizes[:1])  # base windows; compaction rolls up
        store.write(WriteBatch(agg.windows))
    if compact:
        store.compact(None)
    return store, t0


def bench_storage() -> None:
    tmp = tempfile.mkdtemp(prefix="infersight-bench-")
    store, t0 = feature_day(f"sqlite:///{tmp}/mem.db", (60,))
    rows = store.row_count()
    store._w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._w.execute("VACUUM")
    size = os.path.getsize(f"{tmp}/mem.db")
    sample = next(iter(store.iter_windows()))[1]
    print(
        f"memory  {rows} one-minute feature-windows (sketch of 500 values, ~{sample.sketches['value'].positive.counts.size} buckets, "
        f"missing counts): SQLite file {size:,} bytes = {size / rows:,.0f} bytes per feature-window (floor 4,096)"
    )
    print(f"        JSON row payload alone: {len(encode_window(sample))} bytes")

    cases = (
        ("roll-ups 1h,1d, compacted", (60, 3600, 86400), True),
        ("roll-ups 1h,1d, before compaction", (60, 3600, 86400), False),
        ("base windows only", (60,), True),
    )
    for i, (label, sizes, compact) in enumerate(cases):
        st, t0 = feature_day(f"sqlite:///{tmp}/q{i}.db", sizes, compact=compact)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            ws, n = st.query("m", "feature", "age", t0, t0 + 86400)
            times.append(time.perf_counter() - t)
        assert ws.sketches["value"].count == 1440 * 500
        print(
            f"query   24 h of 1-minute windows, one feature, {label}: {n} windows merged, "
            f"median {statistics.median(times) * 1000:.1f} ms over 20 runs"
        )
        st.close()


def bench_evaluation(models: int, features: int, rows: int = 500, profile: str | None = None) -> None:
    """Figure 5; see the module docstring. With ``profile`` (a file name) the steady-state pass
    runs under cProfile (its figures then include the profiler's cost), the statistics are
    dumped to that file and the top entries by own time printed."""
    import resource
    import tracemalloc

    from infersight.processor.evaluate.loop import EvaluationLoop
    from infersight.processor.evaluate.settings import parse_evaluation, parse_models
    from infersight.processor.storage import FEATURE, WindowKey
    from infersight.stats.reference import Reference
    from infersight.stats.windows import FeatureWindow

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    tmp = tempfile.mkdtemp(prefix="infersight-bench-eval-")
    store = open_storage(f"sqlite:///{tmp}/eval.db", (60, 3600, 86400))
    rng = np.random.default_rng(5)
    names = [f"f{j:03d}" for j in range(features)]
    ref = Reference.from_data({n: rng.normal(0, 1, 5000) for n in names}, model=None, multivariate=False).to_dict()
    # a pool of stored windows drawn from the reference's distribution, a few NaNs each
    pool = []
    for _ in range(64):
        x = rng.normal(0, 1, rows)
        x[:2] = np.nan
        pool.append(FeatureWindow.from_column(x, "numeric").to_stats())
    t0 = 1_700_006_400
    minutes = 3
    for m in range(models):
        batch = WriteBatch()
        for minute in range(minutes):
            for j, n in enumerate(names):
                ws = pool[(m * 31 + j * 7 + minute) % len(pool)]
                batch.windows[WindowKey(f"model{m:03d}", "1", FEATURE, n, 60, t0 + 60 * minute)] = ws
        store.write(batch)
    store.compact(None)
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": "10s", "evidence": 3}, "evaluation"),
        on_findings=lambda findings: None,
    )
    for m in range(models):
        loop.references.push(f"model{m:03d}", ref, now=t0)

    def timed(now: float) -> tuple[float, float, int]:
        c, w = time.process_time(), time.perf_counter()
        made = loop.run_once(now=now)
        return time.perf_counter() - w, time.process_time() - c, len(made)

    # first pass: windows 0 and 1 closed; fitting every method included
    wall1, cpu1, n1 = timed(t0 + 120 + 10)
    # steady state: one new window (minute 2) per model
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)
        prof.enable()
        wall2, cpu2, n2 = timed(t0 + 180 + 10)
        prof.disable()
        prof.dump_stats(profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)
        pstats.Stats(profile).sort_stats("cumtime").print_stats(60)
    else:
        wall2, cpu2, n2 = timed(t0 + 180 + 10)
    # the same pass again under tracemalloc, on a fresh window (written now)
    batch = WriteBatch()
    for m in range(models):
        for j, n in enumerate(names):
            batch.windows[WindowKey(f"model{m:03d}", "1", FEATURE, n, 60, t0 + 180)] = pool[(m + j) % len(pool)]
    store.write(batch)
    tracemalloc.start()
    timed(t0 + 240 + 10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"evaluate one pass, {models} models x {features} features, 1-minute windows against a pushed reference, "
        f"1 core: steady state {wall2:.3f} s wall / {cpu2:.3f} s CPU for {n2:,} findings "
        f"({wall2 / (models * features) * 1e6:.0f} us per feature-window; floor 1 s); "
        f"first pass (2 windows per model, methods fitted) {wall1:.3f} s wall / {cpu1:.3f} s CPU for {n1:,} findings"
    )
    print(f"        peak memory of a pass (tracemalloc) {peak / 2**20:.1f} MiB; process peak RSS {rss:.0f} MiB")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--points-per-request", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--only", choices=("ingest", "stages", "storage", "evaluation"), default=None)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--profile", default=None, help="evaluation: cProfile the steady pass into this file")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs visible")
    if args.only in (None, "ingest"):
        bench_ingest(args.seconds, args.points_per_request, args.clients)
    if args.only in (None, "stages"):
        bench_stages(args.points_per_request)
    if args.only in (None, "storage"):
        bench_storage()
    if args.only in (None, "evaluation"):
        bench_evaluation(args.models, args.features, profile=args.profile)


if __name__ == "__main__":
    main()
