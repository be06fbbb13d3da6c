"""Checks shared by the compaction tests: stored rows merged in columns equal the plain merge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from infersight.processor.storage.codec import decode_window
from infersight.processor.storage.merge import StoredRows
from infersight.stats.sketch import Buckets, ExpHistogram
from infersight.stats.windows import WindowStats


def assert_merged_like_merge_all(rows: Sequence[Any], groups: Sequence[Sequence[int]]) -> None:
    """``StoredRows.parse(rows).merged(groups)`` equals ``WindowStats.merge_all`` of each
    group's decoded rows: sketches (``max_size`` included), counters and histograms."""
    got = StoredRows.parse(list(rows)).merged([list(g) for g in groups])
    for group, ws in zip(groups, got):
        want = WindowStats.merge_all([decode_window(rows[r]) for r in group])
        assert ws.sketches.keys() == want.sketches.keys()
        for name, s in want.sketches.items():
            assert ws.sketches[name] == s and ws.sketches[name].max_size == s.max_size, (group, name)
        assert ws.counters == want.counters
        assert {k: h.to_dict() for k, h in ws.histograms.items()} == {
            k: h.to_dict() for k, h in want.histograms.items()
        }


def padded(s: ExpHistogram, front: int, back: int) -> ExpHistogram:
    """``s`` with zero buckets added at the ends of its positive buckets (merge_all keeps them)."""
    if not s.positive.counts.size:
        return s
    counts = np.concatenate([np.zeros(front, np.int64), s.positive.counts, np.zeros(back, np.int64)])
    return ExpHistogram(
        s.scale,
        s.zero_count,
        Buckets(s.positive.offset - front, counts),
        s.negative,
        s.count,
        s.sum,
        s.min,
        s.max,
        s.max_size,
    )
