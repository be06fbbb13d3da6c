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
   and per-window state stored; the windows written as the writer stores an exporter's
   requests, packed a request per model and window), on one core (``sched_setaffinity``); the steady-state pass
   (one new window per model, methods fitted in an earlier pass) and the first pass (fitting
   included); peak memory of a pass (tracemalloc) and the process's peak RSS.
6. Sustained ingest plus compaction in the pattern real exporters produce (``--only sustained``):
   every series (``--models`` x ``--features``) sends exactly one point per 60 s window, and
   the windows advance, so every point lands in a base window of its own. Time is compressed:
   each round of requests covering every series is the next window (simulated timestamps from
   a day boundary 3 days back). The processor (the real server, a separate process pinned to
   one core) runs compaction as the service does, every ``--maintenance-interval`` (the
   maintenance thread: fold, roll up into 1 h and 1 d, expire). After ``--seconds`` the clients
   stop and the bench waits until compaction has rolled up every base row (the backlog
   drained); the sustained rate counts that time too. The processor's CPU time is read from
   ``/proc`` (wall time on a shared machine is noisy; CPU time is the steadier figure).
7. Range queries on an exporter-pattern store (``--only queries``: 20 models x 100 features x
   300 one-point windows, written as the writer stores them (packed, a request per window) and
   compacted as the maintenance pass does), CPU per call: one series,
   one model (``query_model``), ``window_marks`` and ``series``.

Run: python bench/processor.py [--seconds 10] [--points-per-request 2000]
     python bench/processor.py --only evaluation [--models 100 --features 100] [--profile FILE]
     python bench/processor.py --only sustained [--seconds 20 --models 200 --features 100
         --maintenance-interval 1 --points-per-request 2000]
     python bench/processor.py --only queries
"""

from __future__ import annotations

import argparse
import inspect
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.points import MetricPoint
from infersight.processor.ingest.receiver import Receiver
from infersight.processor.ingest.writer import Ingestor, request_digest
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.codec import encode_window, pack_windows
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import WindowStats


def packed_batch(windows: dict[WindowKey, WindowStats]) -> WriteBatch:
    """``windows`` (each one point's window) as the writer stores them: packed at ingest
    (``WriteBatch.packed``), which a tree with batch rows stores a row per model and window."""
    return WriteBatch(packed=dict(zip(windows, pack_windows(list(windows.values())))))


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
        for minute in range(minutes):  # a request per model and window, stored as the writer does
            store.write(
                packed_batch(
                    {
                        WindowKey(f"model{m:03d}", "1", FEATURE, n, 60, t0 + 60 * minute): pool[
                            (m * 31 + j * 7 + minute) % len(pool)
                        ]
                        for j, n in enumerate(names)
                    }
                )
            )
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


# Sentinel timestamps written into the request templates of the sustained bench and replaced
# per request by the round's window (fixed64 fields: same length, so no length prefix changes).
_T_END = 0x1D2C3B4A59687716
_T_START = 0x1D2C3B4A59687715


def _sustained_template(models: range, features: int, sketches: list[ExpHistogram]) -> bytes:
    """One request: a point of every feature of ``models``, timestamps left as sentinels."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "bench-exporter"
    eh = rm.scope_metrics.add().metrics.add(name="ml.feature.value").exponential_histogram
    eh.aggregation_temporality = 1
    for m in models:
        for f in range(features):
            s = sketches[(m * 7 + f) % len(sketches)]
            dp = eh.data_points.add(
                start_time_unix_nano=_T_START,
                time_unix_nano=_T_END,
                count=s.count,
                sum=s.sum,
                scale=s.scale,
                zero_count=s.zero_count,
                min=s.min,
                max=s.max,
            )
            dp.positive.offset = s.positive.offset
            dp.positive.bucket_counts.extend(s.positive.counts.tolist())
            for k, v in (("ml.model.name", f"model-{m:05d}"), ("ml.model.version", "1"), ("ml.feature.name", f"f{f}")):
                dp.attributes.add(key=k).value.string_value = v
    body = req.SerializeToString()
    n = len(models) * features
    for sentinel in (_T_END, _T_START):
        assert body.count(sentinel.to_bytes(8, "little")) == n, "sentinel timestamp not unique in the template"
    return body


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_sustained(
    seconds: float, models: int, features: int, per_request: int, clients: int, maintenance: float, db: str | None
) -> None:
    """Figure 6; see the module docstring."""
    import itertools
    import sqlite3

    tmp = tempfile.mkdtemp(prefix="infersight-bench-sustained-")
    url = db or f"sqlite:///{tmp}/sustained.db"
    ports = {k: _free_port() for k in ("otlp_grpc", "otlp_http", "web")}
    config = f"{tmp}/processor.yaml"
    with open(config, "w") as f:
        f.write(
            f"storage:\n  url: {url}\n  maintenance_interval: {maintenance}s\n"
            "evaluation:\n  enabled: false\n"  # ingest and compaction only
        )
    cmd = [sys.executable, "-m", "infersight.processor", "--config", config, "--log-level", "WARNING"]
    for flag, key in (("--otlp-grpc", "otlp_grpc"), ("--otlp-http", "otlp_http"), ("--web", "web")):
        cmd += [flag, f"127.0.0.1:{ports[key]}"]
    per_request = max(features, per_request - per_request % features)
    models_per_request = per_request // features
    if models % models_per_request:
        raise SystemExit(
            f"--models {models} must be a multiple of {models_per_request} (points per request / features)"
        )
    rng = np.random.default_rng(0)
    sketches = [ExpHistogram.from_values(rng.lognormal(3, 1, 500)) for _ in range(64)]
    templates = [
        _sustained_template(range(m, m + models_per_request), features, sketches)
        for m in range(0, models, models_per_request)
    ]
    series = models * features
    t0 = int(time.time()) // 86400 * 86400 - 3 * 86400
    cpus = sorted(os.sched_getaffinity(0))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}))
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))

    def backlog(before: int | None = None) -> int:
        """Base windows compaction has not rolled up yet (read beside the processor), rows of
        their own and those batch rows hold; ``before``: only those of windows starting before it."""
        cond = "rolled = 0" + ("" if before is None else f" AND start < {before}")
        # the batches table exists once the processor of this tree has opened the store
        sqls = [f"SELECT COUNT(*) FROM stats WHERE {cond}", f"SELECT COALESCE(SUM(n), 0) FROM batches WHERE {cond}"]
        if url.startswith("sqlite"):
            with sqlite3.connect(f"file:{url[len('sqlite:///') :]}?mode=ro", uri=True, timeout=30) as conn:
                has_batches = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'batches'").fetchone()
                return sum(int(conn.execute(sql).fetchone()[0]) for sql in sqls[: 2 if has_batches else 1])
        import psycopg

        with psycopg.connect(url) as conn:
            has_batches = conn.execute("SELECT to_regclass('batches')").fetchone()
            total = 0
            for sql in sqls[: 2 if has_batches and has_batches[0] else 1]:
                row = conn.execute(sql).fetchone()
                total += int(row[0]) if row else 0
            return total

    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{ports['web']}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{ports['otlp_http']}/v1/metrics"
        sent = [0] * clients
        stop = threading.Event()
        counter = itertools.count()
        end_b, start_b = _T_END.to_bytes(8, "little"), _T_START.to_bytes(8, "little")

        def client(c: int) -> None:
            with httpx.Client(timeout=120) as http:
                while not stop.is_set():
                    i = next(counter)
                    window, chunk = divmod(i, len(templates))
                    t_ns = (t0 + 60 * window + 30) * 10**9
                    body = (
                        templates[chunk]
                        .replace(end_b, t_ns.to_bytes(8, "little"))
                        .replace(start_b, (t_ns - 60 * 10**9).to_bytes(8, "little"))
                    )
                    r = http.post(endpoint, content=body, headers={"content-type": "application/x-protobuf"})
                    if r.status_code == 200:
                        sent[c] += per_request

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        cpu0, w0 = _cpu_seconds(proc.pid), time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join()
        t_send = time.perf_counter() - w0
        cpu_send = _cpu_seconds(proc.pid) - cpu0
        # Compaction takes a series' hour of base rows once the data has moved past it, so the
        # newest hour is held (at most 60 rows per series). To charge its roll-up to this run,
        # the exporters send one more round, into the next hour's first window; drained = every
        # row before that round rolled up.
        newest = t0 + 60 * ((next(counter) - 1) // len(templates))
        closing = newest - newest % 3600 + 3600
        at_stop = backlog()
        with httpx.Client(timeout=120) as http:
            for tpl in templates:
                t_ns = (closing + 30) * 10**9
                body = tpl.replace(end_b, t_ns.to_bytes(8, "little")).replace(
                    start_b, (t_ns - 60 * 10**9).to_bytes(8, "little")
                )
                if (
                    http.post(endpoint, content=body, headers={"content-type": "application/x-protobuf"}).status_code
                    == 200
                ):
                    sent[0] += per_request
        left = backlog(closing)
        while left:
            time.sleep(0.1)
            left = backlog(closing)
            if time.perf_counter() - w0 > t_send + 600:
                break
        t_all = time.perf_counter() - w0
        cpu_all = _cpu_seconds(proc.pid) - cpu0
        held = backlog()
        total = sum(sent)
        windows = total / series
        passes = max(t_send / maintenance, 1.0)
        print(
            f"sustained exporter pattern: {series:,} series ({models} models x {features} features), one point per "
            f"series per 60 s window, {per_request} points/request, {clients} clients, compaction every "
            f"{maintenance:g} s (~{windows / passes:.1f} windows per series per pass), processor on 1 core, {url.split(':')[0]}:"
        )
        print(
            f"        {total:,} points acknowledged in {t_send:.1f} s ({total / t_send:,.0f} points/s acked; "
            f"{windows:.1f} windows per series); backlog at stop {at_stop:,} base rows not rolled up, "
            f"{'drained' if not left else f'{left:,} still not'} {t_all - t_send:.1f} s later (after one more round "
            f"into the next hour; its {held:,} rows are held until the data moves past that hour)"
        )
        print(
            f"        sustained (ingest + compaction drained): {total / t_all:,.0f} points/s wall (floor 50,000); "
            f"processor CPU {cpu_all:.1f} s = {total / cpu_all:,.0f} points per CPU-second "
            f"({cpu_all / total * 1e6:.1f} us per point; {cpu_send:.1f} s of it while sending)"
        )
    finally:
        proc.terminate()
        proc.wait(60)
        os.sched_setaffinity(0, set(cpus))


def bench_sustained_stages(models: int, features: int, per_request: int, rounds: int = 130) -> None:
    """Figure 6, in-process and stage by stage: what the processor does per point in the exporter
    pattern (decode, fold, commit, then one maintenance pass per window: compaction and expiry),
    CPU time, no HTTP."""
    per_request = max(features, per_request - per_request % features)
    step = per_request // features
    rng = np.random.default_rng(0)
    sketches = [ExpHistogram.from_values(rng.lognormal(3, 1, 500)) for _ in range(64)]
    templates = [_sustained_template(range(m, m + step), features, sketches) for m in range(0, models, step)]
    tmp = tempfile.mkdtemp(prefix="infersight-bench-sustained-")
    sizes = (60, 3600, 86400)
    store = open_storage(f"sqlite:///{tmp}/stages.db", sizes)
    receiver = Receiver(Ingestor(store, window_sizes=sizes, commit_interval=0), Registry())
    t0 = int(time.time()) // 86400 * 86400 - 3 * 86400
    retention = {60: 7 * 86400.0, 3600: 90 * 86400.0, 86400: 730 * 86400.0}
    cpu = dict.fromkeys(("decode", "fold", "commit", "compact", "expire"), 0.0)
    n = 0
    end_b, start_b = _T_END.to_bytes(8, "little"), _T_START.to_bytes(8, "little")
    # what the writer does: windows one point makes alone are packed straight into stored rows
    # (where the code measured has that path; the same bench file runs against older trees)
    fold_kw = {"packed": True} if "packed" in inspect.signature(aggregate).parameters else {}
    for w in range(rounds):
        t_ns = (t0 + 60 * w + 30) * 10**9
        dirty: set[WindowKey] = set()
        for b in range(0, len(templates), 4):  # 4 requests per commit, as the bench's clients
            bodies = [
                tpl.replace(end_b, t_ns.to_bytes(8, "little")).replace(
                    start_b, (t_ns - 6 * 10**10).to_bytes(8, "little")
                )
                for tpl in templates[b : b + 4]
            ]
            c0 = time.process_time()
            decoded = [receiver.decode("metrics", body, "application/x-protobuf") for body in bodies]
            c1 = time.process_time()
            agg = aggregate([], [], [], sizes[:1], [col for d in decoded for col in d.columns], **fold_kw)
            c2 = time.process_time()
            store.write(WriteBatch(agg.windows, **({"packed": agg.packed} if fold_kw else {})))
            c3 = time.process_time()
            cpu["decode"] += c1 - c0
            cpu["fold"] += c2 - c1
            cpu["commit"] += c3 - c2
            dirty.update(agg.windows)
            dirty.update(getattr(agg, "packed", ()))
            n += sum(d.size for d in decoded)
        c0 = time.process_time()
        store.compact(dirty)
        c1 = time.process_time()
        store.expire(time.time(), retention, 30 * 86400, 86400)
        cpu["expire"] += time.process_time() - c1
        cpu["compact"] += c1 - c0
    total = sum(cpu.values())
    print(
        f"        in-process, {models * features:,} series x {rounds} windows, one compaction pass per window, CPU per "
        "point: "
        + " | ".join(f"{k} {v / n * 1e6:.1f} us" for k, v in cpu.items())
        + f" | total {total / n * 1e6:.1f} us "
        f"= {n / total:,.0f} points per CPU-second"
    )
    store.close()


def bench_queries(models: int = 20, features: int = 100, windows: int = 300) -> None:
    """Figure 7; what the range queries cost on an exporter-pattern store (one point per series
    per window, compacted as the maintenance pass does), CPU per call."""
    rng = np.random.default_rng(0)
    sketches = [ExpHistogram.from_values(rng.lognormal(3, 1, 500)) for _ in range(64)]
    t0 = 1_700_000_000 - 1_700_000_000 % 86400
    store = open_storage(f"sqlite:///{tempfile.mkdtemp(prefix='infersight-bench-queries-')}/q.db", (60, 3600, 86400))
    for m in range(windows):
        batch = packed_batch(
            {
                WindowKey(f"m{f // features}", "1", FEATURE, f"f{f % features}", 60, t0 + 60 * m): WindowStats(
                    {"value": sketches[(f + m) % 64]}
                )
                for f in range(models * features)
            }
        )
        store.write(batch)
        store.compact(batch.packed)
    end = t0 + 60 * windows
    calls: list[tuple[str, Any, int]] = [
        ("query: one series, 5 h", lambda: store.query("m3", FEATURE, "f7", end - 5 * 3600, end), 50),
        ("query: one series, last 10 min", lambda: store.query("m3", FEATURE, "f7", end - 600, end), 50),
        (f"query_model: {features} series, 5 h", lambda: store.query_model("m3", end - 5 * 3600, end), 10),
        (f"query_model: {features} series, last 10 min", lambda: store.query_model("m3", end - 600, end), 10),
        ("window_marks: 5 h", lambda: store.window_marks("m3", end - 5 * 3600, end), 10),
        ("series", lambda: store.series("m3"), 10),
    ]
    print(f"queries on {models * features:,} series x {windows} windows (exporter pattern, compacted), CPU per call:")
    for label, call, reps in calls:
        c0 = time.process_time()
        for _ in range(reps):
            call()
        print(f"        {label:40s} {(time.process_time() - c0) / reps * 1e3:8.2f} ms")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--points-per-request", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument(
        "--only", choices=("ingest", "stages", "storage", "evaluation", "sustained", "queries"), default=None
    )
    ap.add_argument("--maintenance-interval", type=float, default=1.0, help="sustained: seconds between compactions")
    ap.add_argument("--db", default=None, help="sustained: storage URL (default: a fresh SQLite file)")
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
    if args.only in (None, "queries"):
        bench_queries()
    if args.only in (None, "sustained"):
        models = args.models if args.only == "sustained" else 200
        bench_sustained(
            args.seconds,
            models,
            args.features,
            args.points_per_request,
            args.clients,
            args.maintenance_interval,
            args.db,
        )
        bench_sustained_stages(models, args.features, args.points_per_request)


if __name__ == "__main__":
    main()
