"""Processor side of ml.outcomes: one columnar record of 512 calls against one record per call
(what the design chose against), decoded, screened (and, columnar, folded into rows). Prints
µs per call and bytes per call on the wire; asserts nothing.

Run: python bench/outcome_decode.py
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
