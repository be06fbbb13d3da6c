"""Exponential-histogram points as columns: decoded a request at a time, merged a batch at a time.

Why columns: turning each OTLP ``ExponentialHistogramDataPoint`` into its own
:class:`~infersight.stats.sketch.ExpHistogram` (a dict of attributes, two numpy arrays, a trim, a
merge per window) cost ~25 µs a point, and a processor sees thousands of points per request.
Here a request's points become a handful of arrays:

* bucket counts are read without creating a Python int per bucket: each ``Buckets`` message
  is serialised back to bytes (one C call), and the varints of the whole request are decoded
  with numpy at once (:func:`decode_varints`);
* attribute sets are interned, so a point costs one small tuple instead of a dict;
* :func:`merge_groups` merges every (series, window) group of a batch in a few whole-array
  passes, with exactly the result of :meth:`ExpHistogram.merge_all` on the same points.

Example:
    >>> decode_varints(np.frombuffer(bytes([1, 0x96, 0x01, 127]), np.uint8)).tolist()
    [1, 150, 127]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.sketch import DEFAULT_MAX_SIZE, Buckets, ExpHistogram

__all__ = ["SketchColumns", "decode_varints", "bucket_counts", "merge_groups", "run_totals", "trimmed_runs"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass
class SketchColumns:
    """Delta exponential-histogram points of one metric in one request, column by column.

    Point ``i`` has attributes ``attrs[attr_index[i]]``; its positive buckets are
    ``counts[pos_start[i] : pos_start[i] + pos_len[i]]`` from index ``pos_offset[i]``, its
    negative buckets likewise (``neg_*``). Buckets are as sent (not trimmed).
    """

    name: str
    resource: dict[str, Any]
    attrs: list[dict[str, Any]]
    attr_keys: list[Any]  # a hashable identity per entry of ``attrs``
    attr_index: I64
    start_ns: I64
    time_ns: I64
    scale: I64
    count: I64
    zero_count: I64
    sum: F64
    min: F64
    max: F64
    pos_offset: I64
    pos_len: I64
    neg_offset: I64
    neg_len: I64
    counts: I64
    series: list[Any] | None = None  # per entry of ``attrs``: the series it feeds, once screened

    def __len__(self) -> int:
        return int(self.count.size)

    def take(self, keep: npt.NDArray[np.bool_]) -> SketchColumns:
        """Only the points where ``keep`` is true."""
        n_el = self.pos_len + self.neg_len
        el_keep = np.repeat(keep, n_el)
        cols = {f: getattr(self, f)[keep] for f in _POINT_FIELDS}
        return SketchColumns(
            self.name,
            self.resource,
            self.attrs,
            self.attr_keys,
            counts=self.counts[el_keep],
            series=self.series,
            **cols,
        )

    @staticmethod
    def concat(parts: Sequence[SketchColumns], attr_index: Sequence[I64]) -> SketchColumns:
        """All points of ``parts`` in one set of columns, with ``attr_index`` given anew per
        part (the caller's own numbering, e.g. series ids); names and attributes are dropped."""
        # Any: the point fields are arrays, but mypy cannot tell them from the list fields by name.
        cols: dict[str, Any] = {
            f: np.concatenate([getattr(p, f) for p in parts]) for f in _POINT_FIELDS if f != "attr_index"
        }
        return SketchColumns(
            "", {}, [], [], np.concatenate(attr_index), counts=np.concatenate([p.counts for p in parts]), **cols
        )

    def elements(self) -> tuple[I64, I64, I64, I64]:
        """Per bucket: (point, sign 0=positive 1=negative, bucket index, count)."""
        n = len(self)
        lens = np.empty(2 * n, np.int64)
        lens[0::2], lens[1::2] = self.pos_len, self.neg_len
        run = np.repeat(np.arange(2 * n, dtype=np.int64), lens)
        starts = np.cumsum(lens) - lens
        within = np.arange(run.size, dtype=np.int64) - starts[run]
        offsets = np.empty(2 * n, np.int64)
        offsets[0::2], offsets[1::2] = self.pos_offset, self.neg_offset
        return run >> 1, run & 1, offsets[run] + within, self.counts


_POINT_FIELDS = (
    "attr_index",
    "start_ns",
    "time_ns",
    "scale",
    "count",
    "zero_count",
    "sum",
    "min",
    "max",
    "pos_offset",
    "pos_len",
    "neg_offset",
    "neg_len",
)


def decode_varints(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Every base-128 varint in ``data`` (which must end on a varint's last byte), vectorised.

    Values of 2**62 and more are not supported (returned as -1 cast to unsigned); bucket
    counts that large are left to the slow path by :func:`bucket_counts`.
    """
    values, _ = _varints(data)
    return values.astype(np.uint64)


def _varints(data: npt.NDArray[np.uint8]) -> tuple[I64, I64]:
    """The varints (int64; -1 for a value of 2**62 or more) and the positions of continuation
    bytes. Most varints here are one byte, so the work is one pass over the bytes plus small
    passes over the rare longer ones; no per-byte index array is built."""
    term = data < 0x80
    cont = np.flatnonzero(~term)
    values = data[term].astype(np.int64)
    if not cont.size:
        return values, cont
    # Runs of consecutive continuation bytes: each, with the byte after it, is one long varint.
    brk = np.flatnonzero(np.diff(cont) != 1) + 1
    r_first = np.concatenate([[0], brk])
    r_last = np.concatenate([brk - 1, [cont.size - 1]])
    within = np.arange(cont.size, dtype=np.int64) - np.repeat(r_first, r_last - r_first + 1)
    low = (data[cont] & 0x7F).astype(np.uint64) << (7 * within).astype(np.uint64)
    n_bytes = r_last - r_first + 1
    term_pos = cont[r_last] + 1
    high = data[term_pos].astype(np.uint64)
    val = np.add.reduceat(low, r_first)
    too_big = (n_bytes >= 9) | ((n_bytes == 8) & (high >= 64))  # 2**62 or more
    val |= np.where(too_big, 0, high) << (7 * n_bytes).astype(np.uint64)
    values[term_pos - (r_last + 1)] = np.where(too_big, -1, val.astype(np.int64))
    return values, cont


def trimmed_runs(values: I64, r_start: I64, r_end: I64) -> bool:
    """Whether every non-empty run ``values[r_start:r_end]`` starts and ends on a non-zero
    value (a sketch's buckets with no zero bucket at either end to trim).

    >>> trimmed_runs(np.array([1, 0, 2, 0, 3]), np.array([0, 3]), np.array([3, 5]))
    False
    >>> trimmed_runs(np.array([1, 0, 2, 0, 3]), np.array([0, 3, 4]), np.array([3, 3, 5]))
    True
    """
    full = r_end > r_start
    if not full.all():
        r_start, r_end = r_start[full], r_end[full]
    return not r_start.size or bool(((values[r_start] != 0) & (values[r_end - 1] != 0)).all())


def run_totals(values: I64, lens: I64) -> I64:
    """The sum of each run of ``values`` (runs of ``lens`` values one after the other, which
    cover ``values``), in one pass (an empty run sums to 0).

    >>> run_totals(np.array([1, 2, 3, 4]), np.array([2, 0, 2])).tolist()
    [3, 0, 7]
    """
    out = np.zeros(lens.size, np.int64)
    full = lens > 0
    if values.size:
        starts = np.cumsum(lens) - lens
        out[full] = np.add.reduceat(values, starts[full])
    return out


def bucket_counts(blobs: Sequence[bytes]) -> tuple[I64, I64, I64] | None:
    """Offsets, numbers of counts, and all bucket counts (concatenated in order) of serialised
    OTLP ``Buckets`` messages.

    A ``Buckets`` message is varints only: ``08 <zigzag offset>`` when the offset is not 0,
    then ``12 <byte length> <count>...`` when there are counts. The headers are read for all
    messages at once from the decoded varints. Returns ``None`` for any other layout (fields
    in another order, unpacked counts, unknown fields) or counts of 2**62 and more, so the
    caller can read those points the slow way.
    """
    n = len(blobs)
    sizes = np.fromiter(map(len, blobs), np.int64, n)
    raw = np.frombuffer(b"".join(blobs), np.uint8)
    offsets, lens = np.zeros(n, np.int64), np.zeros(n, np.int64)
    if raw.size == 0:
        return offsets, lens, np.zeros(0, np.int64)
    bend = np.cumsum(sizes)
    nonempty = sizes > 0
    if (raw[bend[nonempty] - 1] >= 0x80).any():
        return None  # a message does not end on a whole varint
    values, cont = _varints(raw)
    # Varint index of each message's first varint, and one past its last: a byte position
    # minus the continuation bytes before it.
    v_first = (bend - sizes) - np.searchsorted(cont, bend - sizes)
    v_end = bend - np.searchsorted(cont, bend)
    nv = v_end - v_first
    first_val = values[np.minimum(v_first, values.size - 1)]
    has_off = nonempty & (first_val == 0x08)
    if (nonempty & ~has_off & (first_val != 0x12)).any() or (has_off & (nv < 2)).any():
        return None
    zz = values[v_first[has_off] + 1]
    offsets[has_off] = (zz >> 1) ^ -(zz & 1)
    head = v_first + 2 * has_off  # where the counts field's tag is, if any
    has_cnt = nonempty & (head < v_end)
    if (values[head[has_cnt]] != 0x12).any() or (nv[has_cnt] - 2 * has_off[has_cnt] < 2).any():
        return None
    # The counts field must run exactly to the end of the message (nothing after it): its
    # byte length equals the bytes from the end of the length varint to the message's end.
    length_at = head[has_cnt] + 1
    q = cont - np.arange(cont.size, dtype=np.int64)  # varints ending before each continuation byte
    length_end = length_at + np.searchsorted(q, length_at, side="right") + 1
    if (values[length_at] != bend[has_cnt] - length_end).any():
        return None
    lens[has_cnt] = v_end[has_cnt] - length_at - 1
    keep = np.ones(values.size, bool)
    tags = v_first[has_off]
    keep[tags] = keep[tags + 1] = False
    keep[length_at] = keep[length_at - 1] = False
    counts = values[keep]
    if counts.size and (counts < 0).any():
        return None  # beyond what a sketch's int64 counts hold; let the slow path say so
    return offsets, lens, counts


def merge_groups(
    group: I64, n_groups: int, cols: SketchColumns, max_size: I64 | None = None
) -> list[ExpHistogram | None]:
    """One merged sketch per group: what :meth:`ExpHistogram.merge_all` gives for the points
    of each group (points with ``count == 0`` take no part; a group without any is ``None``).

    ``max_size`` is each point's ``ExpHistogram.max_size`` (e.g. stored sketches); without
    it, a point's is what decoding that point alone gives (the default, or its bucket span).

    The steps of ``merge_all``, for all groups at once: the common scale is the smallest
    scale of the points that have buckets; indices are shifted down to it; the extra halving
    each group needs for its index range to fit ``max_size`` buckets is found per group;
    then one ``bincount`` adds every bucket into its group's slot. Work per bucket is a few
    whole-array passes; everything else is per run (one point's buckets of one sign).
    """
    n_pts = cols.count.size
    # Runs: one point's buckets of one sign (2 per point, in element order). Only their first
    # and last non-zero bucket matter for the layout; zeros inside add nothing.
    r_len = np.empty(2 * n_pts, np.int64)
    r_len[0::2], r_len[1::2] = cols.pos_len, cols.neg_len
    r_off = np.empty(2 * n_pts, np.int64)
    r_off[0::2], r_off[1::2] = cols.pos_offset, cols.neg_offset
    r_end = np.cumsum(r_len)
    r_start = r_end - r_len
    count = cols.counts
    trimmed = trimmed_runs(count, r_start, r_end)
    if trimmed:  # (stored sketches, what SDKs send): no zero to skip
        keep = np.flatnonzero(r_len)
        r_lo = r_off[keep]
        r_hi = r_lo + r_len[keep] - 1
    else:
        nz_at = np.flatnonzero(count)
        before = np.searchsorted(nz_at, r_start)  # non-zero buckets before each run
        r_nz = np.searchsorted(nz_at, r_end) - before
        keep = np.flatnonzero(r_nz)  # runs with a non-zero bucket
        r_lo = r_off[keep] + nz_at[before[keep]] - r_start[keep]
        r_hi = r_off[keep] + nz_at[before[keep] + r_nz[keep] - 1] - r_start[keep]
    r_pt, r_sign = keep >> 1, keep & 1
    big = np.iinfo(np.int64).max
    live = cols.count > 0
    g_live = group[live]
    # Each point's own max_size, as decoding that point alone gives it: the default, or its
    # (trimmed) bucket span if wider.
    if max_size is None:
        max_size = np.full(n_pts, DEFAULT_MAX_SIZE, np.int64)
        np.maximum.at(max_size, r_pt, r_hi - r_lo + 1)
    has_b = np.zeros(n_pts, bool)
    has_b[r_pt] = True
    # Scale: smallest among points with buckets; a group with none takes its smallest scale.
    s_b = np.full(n_groups, big, np.int64)
    np.minimum.at(s_b, group[has_b], cols.scale[has_b])
    s_all = np.full(n_groups, big, np.int64)
    np.minimum.at(s_all, g_live, cols.scale[live])
    group_scale = np.where(s_b < big, s_b, s_all)
    r_g = group[r_pt]
    shift = cols.scale[r_pt] - group_scale[r_g]
    slot = 2 * r_g + r_sign
    lo = np.full(2 * n_groups, big, np.int64)
    hi = np.full(2 * n_groups, -big, np.int64)
    np.minimum.at(lo, slot, r_lo >> shift)
    np.maximum.at(hi, slot, r_hi >> shift)
    present = lo <= hi
    gmax = np.full(n_groups, big, np.int64)
    np.minimum.at(gmax, g_live, max_size[live])
    limit = np.repeat(gmax, 2)
    change = np.zeros(2 * n_groups, np.int64)
    while True:
        need = present & (((hi >> change) - (lo >> change)) >= limit)
        if not need.any():
            break
        change += need
    g_change = np.maximum(change[0::2], change[1::2])
    slot_change = np.repeat(g_change, 2)
    lo_f = np.where(present, lo >> slot_change, 0)
    hi_f = np.where(present, hi >> slot_change, -1)
    width = hi_f - lo_f + 1
    base = np.cumsum(width) - width
    # Bucket j of a kept run sits at index off + j - start; shifted, then placed in its slot.
    # Zero buckets outside the run's non-zero span may land in a neighbour's place: they add 0.
    total = int(width.sum())
    k_start, k_len = r_start[keep], r_len[keep]
    if int(k_len.sum()) == count.size:  # the usual case: no run of zeros only
        el_pos, k_count = np.arange(count.size, dtype=np.int64), count
    else:
        el_pos = np.arange(int(k_len.sum()), dtype=np.int64) + np.repeat(k_start - (np.cumsum(k_len) - k_len), k_len)
        k_count = count[el_pos]
    tshift = shift + slot_change[slot]
    if tshift.any():
        pos = np.repeat(r_off[keep] - k_start, k_len)  # (in place from here: arrays of every bucket)
        pos += el_pos
        pos >>= np.repeat(tshift, k_len)
        pos += np.repeat(base[slot] - lo_f[slot], k_len)
    else:
        pos = np.repeat(r_off[keep] - k_start + base[slot] - lo_f[slot], k_len)
        pos += el_pos
    if not trimmed:  # every bucket of a trimmed run lands within its group's span already
        np.clip(pos, 0, max(total - 1, 0), out=pos)
    if int(k_count.sum()) < 2**53:  # float weights add integers exactly below 2**53
        flat = np.bincount(pos, weights=k_count, minlength=total).astype(np.int64)
    else:
        flat = np.zeros(total, np.int64)
        np.add.at(flat, pos, k_count)

    g_count = np.zeros(n_groups, np.int64)
    np.add.at(g_count, g_live, cols.count[live])
    g_zero = np.zeros(n_groups, np.int64)
    np.add.at(g_zero, g_live, cols.zero_count[live])
    g_sum = np.zeros(n_groups, np.float64)
    np.add.at(g_sum, g_live, cols.sum[live])
    g_min = np.full(n_groups, np.inf)
    np.minimum.at(g_min, g_live, cols.min[live])
    g_max = np.full(n_groups, -np.inf)
    np.maximum.at(g_max, g_live, cols.max[live])
    any_live = np.zeros(n_groups, bool)
    any_live[g_live] = True
    out: list[ExpHistogram | None] = []
    empty = np.zeros(0, np.int64)
    rows = zip(
        any_live.tolist(),
        (group_scale - g_change).tolist(),
        g_zero.tolist(),
        g_count.tolist(),
        g_sum.tolist(),
        g_min.tolist(),
        g_max.tolist(),
        gmax.tolist(),
        present[0::2].tolist(),
        present[1::2].tolist(),
        lo_f[0::2].tolist(),
        lo_f[1::2].tolist(),
        base[0::2].tolist(),
        base[1::2].tolist(),
        width[0::2].tolist(),
        width[1::2].tolist(),
    )
    for alive, scale, zero, cnt, sm, mn, mx, msize, has_p, has_n, off_p, off_n, b_p, b_n, w_p, w_n in rows:
        if not alive:
            out.append(None)
            continue
        pos_b = Buckets(off_p, flat[b_p : b_p + w_p]) if has_p else Buckets(0, empty)
        neg_b = Buckets(off_n, flat[b_n : b_n + w_n]) if has_n else Buckets(0, empty)
        out.append(ExpHistogram(scale, zero, pos_b, neg_b, cnt, sm, mn, mx, msize))
    return out
