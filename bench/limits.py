"""What the series-cardinality limits cost on the receive path, side by side in one run.

The receive stage (decode → screen → limits, on the receiving thread) of the same requests,
three ways, interleaved round by round, CPU time (``time.process_time``), median of the rounds:

* limits off: screening without a limiter (what the processor did before the limits);
* limits on, series known: every series already admitted (the steady state);
* limits on, first sight: a fresh limiter, so every series of the run is admitted on the way.

Every point of a request is its own series (10 models x N features), the worst case for the
limits: their cost is per distinct series in a request, not per point.

Run: python bench/limits.py [--points-per-request 2000] [--requests 40] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.processor.ingest.limits import SeriesLimiter
from infersight.processor.ingest.receiver import PROTOBUF, Receiver
from infersight.processor.ingest.screen import screen
from infersight.processor.ingest.writer import Ingestor
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage import open_storage
from infersight.stats.sketch import ExpHistogram


def build_request(seq: int, points: int, sketches: list[ExpHistogram], models: int = 10) -> bytes:
    """``points`` delta exponential-histogram points, each of its own series."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = f"bench-{seq}"
    eh = rm.scope_metrics.add().metrics.add(name="ml.feature.value").exponential_histogram
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
        for k, v in (("ml.model.name", f"model-{i % models}"), ("ml.model.version", "1")):
            dp.attributes.add(key=k).value.string_value = v
        dp.attributes.add(key="ml.feature.name").value.string_value = f"f{i // models}"
    return req.SerializeToString()


class _Unlimited(Receiver):
    def _screen(self, signal: str, decoded: object) -> object:
        return screen(signal, decoded)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points-per-request", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sketches = [ExpHistogram.from_values(rng.lognormal(3, 1, 500)) for _ in range(64)]
    bodies = [build_request(i, args.points_per_request, sketches) for i in range(args.requests)]
    store = open_storage(f"sqlite:///{tempfile.mkdtemp(prefix='infersight-bench-')}/limits.db", (60,))
    ingestor = Ingestor(store, window_sizes=(60,))
    on, off = Receiver(ingestor, Registry()), _Unlimited(ingestor, Registry())

    def run(receiver: Receiver) -> float:
        t = time.process_time()
        decoded = [receiver.decode("metrics", b, PROTOBUF) for b in bodies]
        spent = time.process_time() - t
        assert not any(d.rejected for d in decoded), "the benchmark's series must all be admitted"
        return spent

    run(on)  # warm the decoder's caches and admit every series
    times: dict[str, list[float]] = {"limits off": [], "limits on, series known": [], "limits on, first sight": []}
    for _ in range(args.rounds):
        times["limits off"].append(run(off))
        times["limits on, series known"].append(run(on))
        fresh = Receiver(ingestor, Registry())
        fresh.limiter = SeriesLimiter(on.limits, None, fresh.registry)
        times["limits on, first sight"].append(run(fresh))
    n = args.points_per_request * args.requests
    print(f"python {sys.version.split()[0]}")
    print(
        f"receive stage (decode + screen + limits), {args.requests} requests of {args.points_per_request} "
        f"points, every point its own series, CPU time, median of {args.rounds} interleaved rounds:"
    )
    for name, spent in times.items():
        m = statistics.median(spent)
        print(f"  {name:26s} {n / m:>10,.0f} points/s  {m / n * 1e6:6.2f} µs/point")


if __name__ == "__main__":
    main()
