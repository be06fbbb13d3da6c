"""The processor's side of model quality from late labels. Prints figures; asserts nothing.

1. ``ml.outcomes``: one columnar record of 512 calls against one record per call (what the
   design chose against), decoded, screened (and, columnar, folded into rows): µs and bytes
   per call.
2. ``QualityEvaluator.evaluate`` on one window of 10,000 labelled calls with 24 baseline
   windows: the first pass (the baseline's calls read and scored) and the steady state (the
   baseline windows were evaluated before: their tallies are read).

Run: python bench/quality_join.py
"""

from __future__ import annotations

import json
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from infersight.processor.ingest.decode import decode_logs
from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.screen import screen

N = 512


def kv(k, v):
    a = AnyValue()
    if isinstance(v, str):
        a.string_value = v
    elif isinstance(v, float):
        a.double_value = v
    else:
        a.int_value = v
    return KeyValue(key=k, value=a)


rids = [f"01a242caf6a8cbaaf6072d3f946a{i:04x}" for i in range(N)]


def per_call():
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(N):
        r = sl.log_records.add()
        r.time_unix_nano = 10**18 + i
        r.event_name = "ml.outcome"
        r.trace_id = bytes(16)
        r.span_id = bytes(8)
        r.attributes.extend(
            [
                kv("ml.model.name", "m"),
                kv("ml.model.version", "1"),
                kv("ml.request.id", rids[i]),
                kv("ml.prediction", 0.5),
            ]
        )
    return req.SerializeToString()


def columnar():
    body = {
        "format": 1,
        "model": "m",
        "version": "1",
        "request_id": rids,
        "time_ns": [10**18 + i for i in range(N)],
        "trace_id": ["ab" * 16] * N,
        "span_id": ["cd" * 8] * N,
        "prediction": [0.5] * N,
        "rows": [1] * N,
        "truncated": [False] * N,
    }
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    r = sl.log_records.add()
    r.time_unix_nano = 10**18
    r.event_name = "ml.outcomes"
    r.body.string_value = json.dumps(body)
    r.attributes.extend([kv("ml.model.name", "m"), kv("ml.model.version", "1")])
    return req.SerializeToString()


def decode() -> None:
    """Processor side of ml.outcomes: columnar against one record per call."""
    for name, data in (
        ("one record per call (decode, screen)", per_call()),
        ("one columnar record (decode, screen, fold)", columnar()),
    ):
        best = 1e9
        for _ in range(20):
            t = time.process_time()
            msg = ExportLogsServiceRequest.FromString(data)
            d = screen("logs", decode_logs(msg))
            if name.startswith("one columnar"):
                aggregate([], [], d.points, (60,))
            best = min(best, time.process_time() - t)
        print(f"{name}: {best / N * 1e6:.2f} µs/call, {len(data) / N:.0f} bytes/call on the wire")


def evaluation(n: int = 10_000, baseline: int = 24) -> None:
    """One window of ``n`` labelled one-row calls against ``baseline`` earlier windows, each
    already evaluated (the loop's steady state: their tallies are stored), and the same with
    none evaluated (the first pass: the baseline's calls are read and scored)."""
    import tempfile

    import numpy as np

    from infersight.processor.evaluate.findings import EvaluationContext
    from infersight.processor.quality.evaluator import QualityEvaluator
    from infersight.processor.quality.settings import parse_quality
    from infersight.processor.storage import open_storage
    from infersight.processor.storage.base import Feedback, Outcome, WriteBatch

    w = 60
    t0 = 1_800_000_000 - 1_800_000_000 % w
    rng = np.random.default_rng(0)
    for evaluated in (False, True):
        store = open_storage(f"sqlite:///{tempfile.mkdtemp()}/q.db", (w,))
        out, fb = [], []
        for k in range(baseline + 1):
            for i in range(n):
                rid, t = f"{k}-{i}", t0 + k * w + i * w / n
                out.append(Outcome("m", "1", rid, int(t * 1e9), "ab" * 16, "cd" * 8, str(int(rng.random() < 0.5))))
                fb.append(Feedback("m", "1", rid, int((t + 30) * 1e9), str(int(rng.random() < 0.5))))
        store.write(WriteBatch(outcomes=out, feedback=fb))
        ev = QualityEvaluator(parse_quality({"baseline_windows": baseline}, "quality"))
        if evaluated:
            for k in range(baseline):
                ev.evaluate(EvaluationContext(store, "m", w, t0 + k * w, t0 + 3600))
        t = time.perf_counter()
        ev.evaluate(EvaluationContext(store, "m", w, t0 + baseline * w, t0 + 3600))
        e = time.perf_counter() - t
        what = "baseline windows evaluated before (tallies)" if evaluated else "first pass (baseline calls read)"
        print(f"evaluate one window of {n:,} calls, {baseline} baseline windows, {what}: {e:.2f} s")
        store.close()


if __name__ == "__main__":
    decode()
    evaluation()
