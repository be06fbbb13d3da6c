"""What keeping spans for the request view (``dashboard.traces.keep``) costs the ingest writer.
Prints figures; asserts nothing.

One batch of 2,000 spans (1% errors) is folded into windows and written to SQLite with
``keep`` off, flagged and all, the three modes interleaved round by round so machine noise
hits each alike; CPU time (``time.process_time``), best and median of the rounds.

Run: python bench/trace_keep.py
"""

from __future__ import annotations

import tempfile
import time

from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.keep import keep_items
from infersight.processor.ingest.points import SpanPoint
from infersight.processor.storage import open_storage
from infersight.processor.storage.base import WriteBatch

N, ROUNDS = 2000, 5


def spans(r):
    out = []
    for i in range(N):
        t = (r * N + i) * 1_000_000 + 10**18
        out.append(
            SpanPoint(
                "predict m",
                {"service.name": "api"},
                {"ml.model.name": "m", "ml.model.version": "1", "ml.request.id": f"r{r}-{i}", "ml.batch.size": 1},
                f"{r:08x}{i:024x}",
                f"{i:016x}",
                t,
                t + 5_000_000,
                i % 100 == 0,
                "ValueError" if i % 100 == 0 else None,
            )
        )
    return out


res = {}
with tempfile.TemporaryDirectory() as d:
    stores = {m: open_storage(f"sqlite:///{d}/{m}.db", (60,)) for m in ("off", "flagged", "all")}
    batches = [spans(r) for r in range(ROUNDS)]
    for r in range(ROUNDS):
        for mode, st in stores.items():  # interleaved so machine noise hits every mode alike
            t0 = time.process_time()
            agg = aggregate([], batches[r], [], (60,))
            items = keep_items(batches[r], [], mode)
            st.write(WriteBatch(agg.windows, trace_items=items))
            res.setdefault(mode, []).append(time.process_time() - t0)
for mode, ts in res.items():
    best = min(ts)
    print(
        f"keep={mode:8s} CPU per {N}-span batch: best {best * 1e3:7.1f} ms  ({best / N * 1e6:5.1f} us/span)  median {sorted(ts)[len(ts) // 2] * 1e3:7.1f} ms"
    )
