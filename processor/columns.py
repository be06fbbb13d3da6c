"""Exponential-histogram points as columns: decoded a request at a time, merged a batch at a time.

Why columns: turning each OTLP ``ExponentialHistogramDataPoint`` into its own
:class:`~infersight.sketch.ExpHistogram` (a dict of attributes, two numpy arrays, a trim, a
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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from infersight.sketch import DEFAULT_MAX_SIZE, Buckets, ExpHistogram

__all__ = ["SketchColumns", "decode_varints", "bucket_counts", "merge_groups"]

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
    attr_keys: list[Any]  # a hashable identity per entry of ``attrs`` (with the resource's)
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

    def __len__(self) -> int:
        return int(self.count.size)

    def take(self, keep: npt.NDArray[np.bool_]) -> SketchColumns:
        """Only the points where ``keep`` is true."""
        n_el = self.pos_len + self.neg_len
        el_keep = np.repeat(keep, n_el)
        cols = {f: getattr(self, f)[keep] for f in _POINT_FIELDS}
        return SketchColumns(self.name, self.resource, self.attrs, self.attr_keys, counts=self.counts[el_keep], **cols)

    @staticmethod
    def concat(parts: Sequence[SketchColumns], attr_index: Sequence[I64]) -> SketchColumns:
        """All points of ``parts`` in one set of columns, with ``attr_index`` given anew per
        part (the caller's own numbering, e.g. series ids); names and attributes are dropped."""
        cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _POINT_FIELDS if f != "attr_index"}
        return SketchColumns("", {}, [], [], np.concatenate(attr_index), counts=np.concatenate([p.counts for p in parts]),
                             **cols)

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


_POINT_FIELDS = ("attr_index", "start_ns", "time_ns", "scale", "count", "zero_count", "sum", "min", "max",
                 "pos_offset", "pos_len", "neg_offset", "neg_len")


def decode_varints(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Every base-128 varint in ``data`` (which must end on a varint's last byte), vectorised:
    one pass for the common one-byte values, then one small pass per further byte."""
    return _varints(data)[0]


def _varints(data: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint64], I64]:
    """The varints and the byte position just past each."""
    last = data < 0x80
    ends = np.flatnonzero(last)
    if ends.size == data.size:
        return data.astype(np.uint64), ends + 1
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    out = (data[starts] & 0x7F).astype(np.uint64)
    length = ends - starts + 1
    longer = np.flatnonzero(length > 1)
    k = 1
    while longer.size:
        out[longer] |= (data[starts[longer] + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        k += 1
        longer = longer[length[longer] > k]
    return out, ends + 1


def bucket_counts(blobs: Sequence[bytes]) -> tuple[I64, I64, I64] | None:
    """Offsets, numbers of counts, and all bucket counts (concatenated in order) of serialised
    OTLP ``Buckets`` messages.

    A ``Buckets`` message is varints only: ``08 <zigzag offset>`` when the offset is not 0,
    then ``12 <byte length> <count>...`` when there are counts. The headers are read for all
    messages at once from the decoded varints. Returns ``None`` for any other layout (fields
    in another order, unpacked counts, unknown fields), so the caller can read those points
    the slow way.
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
    values, after = _varints(raw)
    # Index of each message's first varint, and one past its last.
    v_first = np.searchsorted(after, bend - sizes, side="right")
    v_end = np.searchsorted(after, bend, side="right")
    nv = v_end - v_first
    first_val = values[np.minimum(v_first, values.size - 1)]
    has_off = nonempty & (first_val == 0x08)
    if (nonempty & ~has_off & (first_val != 0x12)).any() or (has_off & (nv < 2)).any():
        return None
    zz = values[v_first[has_off] + 1].astype(np.int64)
    offsets[has_off] = (zz >> 1) ^ -(zz & 1)
    head = v_first + 2 * has_off  # where the counts field's tag is, if any
    has_cnt = nonempty & (head < v_end)
    if (values[head[has_cnt]] != 0x12).any() or (nv[has_cnt] - 2 * has_off[has_cnt] < 2).any():
        return None
    # The counts field must run exactly to the end of the message (nothing after it).
    length_at = head[has_cnt] + 1
    if (values[length_at].astype(np.int64) != bend[has_cnt] - after[length_at]).any():
        return None
    lens[has_cnt] = v_end[has_cnt] - length_at - 1
    marks = np.zeros(values.size + 1, np.int64)
    np.add.at(marks, length_at + 1, 1)
    np.add.at(marks, v_end[has_cnt], -1)
    counts = values[np.cumsum(marks[:-1]) > 0]
    if counts.size and int(counts.max()) >= 2**62:
        return None  # beyond what a sketch's int64 counts hold; let the slow path say so
    return offsets, lens, counts.astype(np.int64)


def merge_groups(group: I64, n_groups: int, cols: SketchColumns) -> list[ExpHistogram | None]:
    """One merged sketch per group: what :meth:`ExpHistogram.merge_all` gives for the points
    of each group (points with ``count == 0`` take no part; a group without any is ``None``).

    The steps of ``merge_all``, for all groups at once: the common scale is the smallest
    scale of the points that have buckets; indices are shifted down to it; the extra halving
    each group needs for its index range to fit ``max_size`` buckets is found per group;
    then one ``bincount`` adds every bucket into its group's slot. Work per bucket is a few
    whole-array passes; everything else is per run (one point's buckets of one sign).
    """
    n_pts = cols.count.size
    point, sign, index, count = cols.elements()
    nonzero = count != 0
    if not nonzero.all():
        point, sign, index, count = point[nonzero], sign[nonzero], index[nonzero], count[nonzero]
    # Runs: the non-zero buckets of one point and sign, consecutive and in index order.
    run = 2 * point + sign
    brk = np.flatnonzero(run[1:] != run[:-1]) + 1
    first = np.concatenate([[0], brk]) if run.size else np.zeros(0, np.int64)
    last = np.concatenate([brk - 1, [run.size - 1]]) if run.size else np.zeros(0, np.int64)
    r_pt, r_sign = point[first], sign[first]
    r_lo, r_hi = index[first], index[last]
    big = np.iinfo(np.int64).max
    live = cols.count > 0
    g_live = group[live]
    # Each point's own max_size, as decoding that point alone gives it: the default, or its
    # (trimmed) bucket span if wider.
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
    run_len = last - first + 1
    pos = (index >> np.repeat(shift + slot_change[slot], run_len)) + np.repeat(base[slot] - lo_f[slot], run_len)
    total = int(width.sum())
    if int(count.sum()) < 2**53:  # float weights add integers exactly below 2**53
        flat = np.bincount(pos, weights=count, minlength=total).astype(np.int64)
    else:
        flat = np.zeros(total, np.int64)
        np.add.at(flat, pos, count)

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
    rows = zip(any_live.tolist(), (group_scale - g_change).tolist(), g_zero.tolist(), g_count.tolist(),
               g_sum.tolist(), g_min.tolist(), g_max.tolist(), gmax.tolist(), present[0::2].tolist(),
               present[1::2].tolist(), lo_f[0::2].tolist(), lo_f[1::2].tolist(), base[0::2].tolist(),
               base[1::2].tolist(), width[0::2].tolist(), width[1::2].tolist())
    for alive, scale, zero, cnt, sm, mn, mx, msize, has_p, has_n, off_p, off_n, b_p, b_n, w_p, w_n in rows:
        if not alive:
            out.append(None)
            continue
        pos_b = Buckets(off_p, flat[b_p : b_p + w_p]) if has_p else Buckets(0, empty)
        neg_b = Buckets(off_n, flat[b_n : b_n + w_n]) if has_n else Buckets(0, empty)
        out.append(ExpHistogram(scale, zero, pos_b, neg_b, cnt, sm, mn, mx, msize))
    return out
