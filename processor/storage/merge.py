"""Stored window rows merged a batch at a time, in columns: what compaction folds and rolls up.

Compaction merges stored rows: the rows of a base window into one, and fresh base rows into
their roll-up windows. Rows come in every form :func:`~infersight.processor.storage.codec.decode_window`
reads: rows in the binary form (what stores write now) are read for a whole chunk in a few
array passes, JSON rows (older stores) with one regular expression each or, failing that, a
JSON parse. Decoding each row into a :class:`~infersight.stats.windows.WindowStats` and
merging window by window cost ~100 µs a row when every point has a window of its own
(the exporter pattern: one point per series per window). Here the rows of a whole compaction
chunk are parsed once into columns (:class:`StoredRows`), and every group of rows (a folded
window, a roll-up window) is merged in one :func:`~infersight.processor.ingest.columns.merge_groups`
call, whose result equals :meth:`ExpHistogram.merge_all` on the same sketches.

Sketches the columnar merge does not take (an empty sketch, one without min/max, bucket
counts stored as a JSON list by an old version, zero buckets at either end, a count that does
not add up) send their group through the plain ``merge_all``, which gives the answer (or the
error) it always gave.

Example:
    >>> from infersight.processor.storage.codec import encode_window
    >>> from infersight.stats.sketch import ExpHistogram
    >>> rows = StoredRows.parse([encode_window(WindowStats({"value": ExpHistogram.from_values([x])}))
    ...                          for x in (1.0, 2.0, 4.0)])
    >>> [ws.sketches["value"].count for ws in rows.merged([[0, 1], [2]])]
    [2, 1]
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from infersight.processor.ingest.columns import SketchColumns, merge_groups, run_totals
from infersight.processor.storage.codec import (
    _MAGIC,
    _UNSIGNED,
    HEADER,
    ParsedRow,
    _unpack_sketch,
    binary_header,
    decode_window,
)
from infersight.stats.sketch import DEFAULT_MAX_SIZE, ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats

__all__ = ["StoredRows"]

I64 = npt.NDArray[np.int64]

_DTYPE = {"B": "<u1", "H": "<u2", "I": "<u4", "Q": "<u8"}
_EMPTY = np.zeros(0, np.int64)
_INT_FIELDS = ("scale", "count", "zero_count", "max_size", "pos_off", "neg_off", "pos_len", "neg_len")
_NAMES: dict[bytes, str] = {}  # sketch names met in binary rows (a handful: value, duration, ...)


class _Cols:
    """Columns of some rows' sketches (per sketch: integer fields, sum/min/max, a plain flag;
    bucket counts laid out per sketch, positive then negative), joined by StoredRows.parse."""

    def __init__(self) -> None:
        self.fields: dict[str, I64] = {}
        self.sum = np.zeros(0)
        self.min = np.zeros(0)
        self.max = np.zeros(0)
        self.plain: npt.NDArray[np.bool_] = np.zeros(0, bool)
        self.counts: I64 = _EMPTY

    @classmethod
    def empty(cls) -> _Cols:
        out = cls()
        out.fields = {k: _EMPTY for k in _INT_FIELDS}
        return out


class StoredRows:
    """Stored windows (bytes or JSON text) parsed into columns, ready to be merged in any grouping.

    Row ``r``'s sketches are ``sketch_names[r]`` (name -> sketch number); sketch ``j`` has
    scalar fields at index ``j`` of the arrays below and its bucket counts (positive, then
    negative) at ``counts[el_start[j] : el_start[j] + pos_len[j] + neg_len[j]]``. A sketch
    the columnar merge does not take is flagged in ``plain`` and kept as its stored dict.
    """

    def __init__(self) -> None:
        self.texts: list[str | bytes] = []
        self.sketch_names: list[dict[str, int]] = []
        self.others: list[WindowStats | None] = []  # histograms and counters (no sketches), if any
        self.raw: list[tuple[int, str]] = []  # per sketch: its row and name (for the plain path)
        self.plain: npt.NDArray[np.bool_] = np.zeros(0, bool)
        self.fields: dict[str, I64] = {}
        self.sum = np.zeros(0)
        self.min = np.zeros(0)
        self.max = np.zeros(0)
        self.el_start: I64 = _EMPTY
        self.counts: I64 = _EMPTY
        # the sketch name when every row is in the binary form with one sketch of that name and
        # no counters (row r is then sketch r): merged_flat takes such rows without a loop per row
        self.uniform: str | None = None

    @classmethod
    def parse(cls, texts: Sequence[str | bytes], known: Sequence[ParsedRow | None] | None = None) -> StoredRows:
        """Parse stored windows (every form :func:`~.codec.decode_window` reads: the binary
        form, JSON text as ``str`` or UTF-8 ``bytes``).

        ``known[r]``, where given, is row ``r``'s JSON text already parsed
        (:func:`~.codec.encode_windows_parsed` of the window it was written from), taken
        instead of reading the text."""
        out = cls()
        out.texts = list(texts)
        n_rows = len(out.texts)
        out.sketch_names = [{} for _ in range(n_rows)]
        out.others = [None] * n_rows
        binary = [
            r
            for r, t in enumerate(out.texts)
            if not isinstance(t, str) and t[:1] == _MAGIC and (known is None or known[r] is None)
        ]
        is_binary = set(binary) if len(binary) < n_rows else None
        # text rows first (sketches numbered from 0), then binary rows
        text_cols = out._parse_texts(
            [] if is_binary is None else [r for r in range(n_rows) if r not in is_binary], known
        )
        bin_cols = out._parse_binary(binary, len(out.raw))
        parts = [c for c in (text_cols, bin_cols) if c is not None]
        if not parts:
            parts = [_Cols.empty()]
        out.fields = {k: np.concatenate([c.fields[k] for c in parts]) for k in _INT_FIELDS}
        out.sum = np.concatenate([c.sum for c in parts])
        out.min = np.concatenate([c.min for c in parts])
        out.max = np.concatenate([c.max for c in parts])
        out.plain = np.concatenate([c.plain for c in parts])
        lens = out.fields["pos_len"] + out.fields["neg_len"]
        out.el_start = np.cumsum(lens) - lens
        counts = parts[0].counts if len(parts) == 1 else np.concatenate([c.counts for c in parts])
        out.counts = counts
        # What merge_all would refuse or keep as given goes the plain way: zero buckets at an
        # end of a sign (merge_all keeps them, the columnar merge trims them), or a count that
        # is not zero_count plus the buckets (decoding raises).
        pos_len, neg_len = out.fields["pos_len"], out.fields["neg_len"]
        if counts.size:
            for start, ln in ((out.el_start, pos_len), (out.el_start + pos_len, neg_len)):
                has = ln > 0
                first = counts[np.where(has, start, 0)]
                last = counts[np.where(has, start + ln - 1, 0)]
                out.plain |= has & ((first == 0) | (last == 0))
        bucket_total = run_totals(counts, lens)
        out.plain |= out.fields["count"] != out.fields["zero_count"] + bucket_total
        return out

    def _parse_texts(self, rows: list[int], known: Sequence[ParsedRow | None] | None) -> _Cols | None:
        """Rows ``rows`` in the JSON form, read into columns (their sketches numbered first)."""
        if not rows:
            return None
        # one tuple per sketch: scale, count, zero_count, max_size, sum, min, max, positive
        # offset, code, base64; negative offset, code, base64; taken by the columnar merge
        rec: list[tuple[Any, ...]] = []
        loads, match = json.loads, _CANONICAL.fullmatch
        for r in rows:
            text = self.texts[r]
            if not isinstance(text, str):
                text = bytes(text).decode()
            g: Sequence[Any] | None = known[r] if known is not None else None
            if g is None:
                m = match(text)
                g = None if m is None else m.groups()
            if g is not None:  # the form encode_window writes for one sketch: no JSON parse
                self.sketch_names[r] = {g[0]: len(rec)}
                self.raw.append((r, g[0]))
                rec.append((g[1], g[3], g[2], g[7], g[4], g[5], g[6], g[8] or 0, g[9], g[10], g[11] or 0, g[12], g[13]))
                c = g[14]
                self.others[r] = None if c == "{}" else WindowStats({}, {}, loads(c))
                continue
            d = loads(text)
            names: dict[str, int] = {}
            for name, sk in (d.get("s") or {}).items():
                names[name] = len(rec)
                self.raw.append((r, name))
                if not _regular(sk):  # kept as stored; its columns are placeholders never read
                    rec.append((0, 0, 0, 0, 0.0, 0.0, 0.0, 0, None, "", 0, None, ""))
                    continue
                pos, neg = sk.get("positive") or {}, sk.get("negative") or {}
                pp, np_ = pos.get("packed", ""), neg.get("packed", "")
                rec.append(
                    (
                        sk["scale"],
                        sk["count"],
                        sk.get("zero_count", 0),
                        sk.get("max_size", DEFAULT_MAX_SIZE),
                        sk.get("sum", 0.0),
                        sk["min"],
                        sk["max"],
                        pos.get("offset", 0),
                        pp[:1] or None,
                        pp[1:],
                        neg.get("offset", 0),
                        np_[:1] or None,
                        np_[1:],
                    )
                )
            self.sketch_names[r] = names
            h, c = d.get("h"), d.get("c")
            self.others[r] = (
                WindowStats({}, {k: ExplicitHistogram.from_dict(v) for k, v in h.items()} if h else {}, c or {})
                if h or c
                else None
            )
        n = len(rec)
        cols = list(zip(*rec)) if rec else [()] * 13
        out = _Cols()
        out.fields = {
            k: np.fromiter(map(int, cols[i]), np.int64, n)
            for k, i in (
                ("scale", 0),
                ("count", 1),
                ("zero_count", 2),
                ("max_size", 3),
                ("pos_off", 7),
                ("neg_off", 10),
            )
        }
        out.sum = np.fromiter(map(float, cols[4]), np.float64, n)
        out.min = np.fromiter(map(float, cols[5]), np.float64, n)
        out.max = np.fromiter(map(float, cols[6]), np.float64, n)
        # placeholders of irregular sketches have count 0: the plain path takes them
        out.plain = out.fields["count"] <= 0
        a2b = binascii.a2b_base64
        blobs = [[a2b(b) if b else b"" for b in cols[9]], [a2b(b) if b else b"" for b in cols[12]]]
        codes = [[c or "B" for c in cols[8]], [c or "B" for c in cols[11]]]
        pos, pos_len = _unpack(blobs[0], codes[0])
        neg, neg_len = _unpack(blobs[1], codes[1])
        out.fields["pos_len"], out.fields["neg_len"] = pos_len, neg_len
        # counts laid out per sketch: positive buckets, then negative
        lens = pos_len + neg_len
        el_start = np.cumsum(lens) - lens
        if neg.size:
            counts = np.empty(int(lens.sum()), np.int64)
            pos_at = np.repeat(el_start - (np.cumsum(pos_len) - pos_len), pos_len) + np.arange(pos.size)
            neg_at = np.repeat(el_start + pos_len - (np.cumsum(neg_len) - neg_len), neg_len) + np.arange(neg.size)
            counts[pos_at], counts[neg_at] = pos, neg
        else:  # no negative values anywhere (the usual case): the positive counts are the layout
            counts = pos
        out.counts = counts
        return out

    def _parse_binary(self, rows: list[int], first: int) -> _Cols | None:
        """Rows ``rows`` in the binary form, read into columns with a few array passes (their
        sketches numbered from ``first``): the header of every row in one gather, the bucket
        counts (already laid out positive, then negative) in another."""
        if not rows:
            return None
        texts = self.texts
        # (rows in the binary form are bytes-like: a str is never taken for one)
        blobs = cast("list[bytes]", texts if len(rows) == len(texts) else [texts[r] for r in rows])
        head, starts, joined = binary_header(blobs)
        size = HEADER.itemsize
        out = _Cols()
        pos_len = head["pos_len"].astype(np.int64)
        neg_len = head["neg_len"].astype(np.int64)
        width = head["width"].astype(np.int64)
        lens = pos_len + neg_len
        name_len, ctr_len = head["name_len"].astype(np.int64), head["ctr_len"].astype(np.int64)
        name_at = starts + size + width * lens
        blob_len = np.fromiter(map(len, blobs), np.int64, len(blobs))
        if (~np.isin(width, (1, 2, 4, 8)) | (blob_len != name_at - starts + name_len + ctr_len)).any():
            raise ValueError("a stored window does not match its header; the row is corrupt")
        raw = np.frombuffer(joined, np.uint8)
        if (width == 1).all():
            total = int(lens.sum())
            ends = np.cumsum(lens)
            at = np.repeat(starts + size - (ends - lens), lens) + np.arange(total)
            counts = raw[at].astype(np.int64)
        else:
            counts = np.concatenate(
                [
                    np.frombuffer(joined, _UNSIGNED[w], n, a).astype(np.int64)
                    for w, n, a in zip(width.tolist(), lens.tolist(), (starts + size).tolist())
                ]
            )
        out.counts = counts
        out.fields = {
            "scale": head["scale"].astype(np.int64),
            "count": head["count"].astype(np.int64),
            "zero_count": head["zero_count"].astype(np.int64),
            "max_size": head["max_size"].astype(np.int64),
            "pos_off": head["pos_off"].astype(np.int64),
            "neg_off": head["neg_off"].astype(np.int64),
            "pos_len": pos_len,
            "neg_len": neg_len,
        }
        out.sum = head["sum"].astype(np.float64)
        out.min = head["min"].astype(np.float64)
        out.max = head["max"].astype(np.float64)
        out.plain = (out.fields["count"] <= 0) | ~(np.isfinite(out.sum) & np.isfinite(out.min) & np.isfinite(out.max))
        names = _NAMES
        loads = json.loads
        n = len(rows)
        if n == len(self.texts) and first == 0 and not ctr_len.any() and (name_len == name_len[0]).all():
            # every row of the chunk here, one name and no counters (compaction of feature
            # windows): the names compared as one array, the per-row entries made in bulk
            nl = int(name_len[0])
            at = name_at[:, None] + np.arange(nl)
            if nl == 0 or (raw[at] == raw[at[0]]).all():
                key = joined[int(name_at[0]) : int(name_at[0]) + nl]
                one = names.get(key)
                if one is None:
                    one = key.decode()
                    if len(names) < 1000:
                        names[key] = one
                self.sketch_names = [{one: j} for j in range(n)]
                self.raw = [(j, one) for j in range(n)]
                self.uniform = one
                return out
        one = None
        mixed = False
        for j, (r, a, nl, cl) in enumerate(zip(rows, name_at.tolist(), name_len.tolist(), ctr_len.tolist())):
            key = joined[a : a + nl]
            name = names.get(key)
            if name is None:
                name = key.decode()
                if len(names) < 1000:
                    names[key] = name
            if one is None:
                one = name
            elif name is not one and name != one:
                mixed = True
            self.sketch_names[r] = {name: first + j}
            self.raw.append((r, name))
            if cl:
                self.others[r] = WindowStats({}, {}, loads(joined[a + nl : a + nl + cl]))
                mixed = True
        if not mixed and first == 0 and len(rows) == len(self.texts):
            self.uniform = one
        return out

    def __len__(self) -> int:
        return len(self.texts)

    def merged(self, groups: Sequence[Sequence[int]]) -> list[WindowStats]:
        """Per group of row numbers, the rows merged: ``WindowStats.merge_all`` of the decoded
        rows, in the order given (a row may be in several groups)."""
        out = [WindowStats() for _ in groups]
        # one columnar point per (group, sketch name, row); (group, name) pairs numbered in the
        # order merge_all meets them
        slot_of: dict[tuple[int, str], int] = {}
        slots: list[tuple[int, str]] = []
        pt_sketch: list[int] = []
        pt_slot: list[int] = []
        plain_slots: set[int] = set()
        plain = self.plain
        for g, rows in enumerate(groups):
            others = [o for o in (self.others[r] for r in rows) if o is not None]
            if others:  # histograms and counters: merged as merge_all does, into a fresh window
                out[g] = WindowStats.merge_all([WindowStats(), *others])
            for r in rows:
                for name, j in self.sketch_names[r].items():
                    key = (g, name)
                    slot = slot_of.get(key)
                    if slot is None:
                        slot = slot_of[key] = len(slots)
                        slots.append(key)
                    if plain[j]:
                        plain_slots.add(slot)
                    pt_sketch.append(j)
                    pt_slot.append(slot)
        if not slots:
            return out
        sketch_idx = np.fromiter(pt_sketch, np.int64, len(pt_sketch))
        slot_idx = np.fromiter(pt_slot, np.int64, len(pt_slot))
        merged: list[ExpHistogram | None] = [None] * len(slots)
        if plain_slots:
            odd = np.zeros(len(slots), bool)
            odd[list(plain_slots)] = True
            for slot in plain_slots:
                parts = [self._plain_sketch(j) for j in sketch_idx[slot_idx == slot].tolist()]
                merged[slot] = parts[0] if len(parts) == 1 else ExpHistogram.merge_all(parts)
            keep = ~odd[slot_idx]
            sketch_idx, slot_idx = sketch_idx[keep], slot_idx[keep]
        if sketch_idx.size:
            # renumber the columnar slots densely for merge_groups
            used, dense = np.unique(slot_idx, return_inverse=True)
            got = merge_groups(
                dense.ravel().astype(np.int64),
                used.size,
                self._columns(sketch_idx),
                self.fields["max_size"][sketch_idx],
            )
            for slot, sk in zip(used.tolist(), got):
                merged[slot] = sk
        for (g, name), sk in zip(slots, merged):
            assert sk is not None  # every columnar point has count > 0
            out[g].sketches[name] = sk
        return out

    def merged_flat(self, rows: I64, lens: I64) -> list[WindowStats]:
        """:meth:`merged` of the groups ``rows[:lens[0]]``, ``rows[lens[0]:lens[0] + lens[1]]``, ...

        Where every row is one sketch of one name in the binary form (:attr:`uniform`, what
        compaction reads in the exporter pattern) and none needs the plain merge, the groups
        go to ``merge_groups`` as arrays, with no work per row in Python; otherwise this is
        :meth:`merged` of the groups as lists."""
        name = self.uniform
        if name is None or not rows.size or self.plain[rows].any():
            bounds = np.cumsum(lens).tolist()
            flat = rows.tolist()
            return self.merged([flat[b - n : b] for b, n in zip(bounds, lens.tolist())])
        n_groups = lens.size
        out = [WindowStats() for _ in range(n_groups)]
        group = np.repeat(np.arange(n_groups, dtype=np.int64), lens)
        got = merge_groups(group, n_groups, self._columns(rows), self.fields["max_size"][rows])
        for ws, sk in zip(out, got):
            if sk is not None:  # None: a group of no rows (every row here has count > 0)
                ws.sketches[name] = sk
        return out

    def _plain_sketch(self, j: int) -> ExpHistogram:
        """Sketch ``j`` decoded on its own, as :func:`~.codec.decode_window` decodes it."""
        row, name = self.raw[j]
        text = self.texts[row]
        if not isinstance(text, str) and text[:1] == _MAGIC:
            return decode_window(text).sketches[name]
        return _unpack_sketch(json.loads(text)["s"][name])

    def _columns(self, idx: I64) -> SketchColumns:
        """Sketches ``idx`` (repeats allowed) as columns, their buckets gathered in order."""
        f = self.fields
        pos_len, neg_len = f["pos_len"][idx], f["neg_len"][idx]
        if idx.size == self.el_start.size and idx.size and idx[0] == 0 and (np.diff(idx) == 1).all():
            counts = self.counts  # every sketch once, in order: the buckets are laid out already
        else:
            lens = pos_len + neg_len
            ends = np.cumsum(lens)
            at = np.repeat(self.el_start[idx] - (ends - lens), lens) + np.arange(int(ends[-1]) if ends.size else 0)
            counts = self.counts[at]
        zeros = np.zeros(idx.size, np.int64)
        return SketchColumns(
            "",
            {},
            [],
            [],
            zeros,
            zeros,
            zeros,
            f["scale"][idx],
            f["count"][idx],
            f["zero_count"][idx],
            self.sum[idx],
            self.min[idx],
            self.max[idx],
            f["pos_off"][idx],
            pos_len,
            f["neg_off"][idx],
            neg_len,
            counts,
        )


_NUM = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_INT = r"(-?\d+)"
_B64 = r"([BHIQ])([A-Za-z0-9+/]+={0,2})"
# a row holding one sketch and no explicit histograms, exactly as encode_window writes it
_CANONICAL = re.compile(
    r'\{"s":\{"([A-Za-z0-9_.]+)":\{"scale":'
    + _INT
    + r',"zero_count":'
    + _INT
    + r',"count":'
    + _INT
    + r',"sum":'
    + _NUM
    + r',"min":'
    + _NUM
    + r',"max":'
    + _NUM
    + r',"max_size":'
    + _INT
    + r'(?:,"positive":\{"offset":'
    + _INT
    + r',"packed":"'
    + _B64
    + r'"\})?'
    + r'(?:,"negative":\{"offset":'
    + _INT
    + r',"packed":"'
    + _B64
    + r'"\})?'
    + r'\}\},"h":\{\},"c":(\{.*\})\}'
)


def _regular(s: dict[str, Any]) -> bool:
    """Whether a stored sketch dict is one the columnar merge takes as it is."""
    if s.get("count", 0) <= 0 or s.get("min") is None or s.get("max") is None or "scale" not in s:
        return False
    if not (math.isfinite(s.get("sum", 0.0)) and math.isfinite(s["min"]) and math.isfinite(s["max"])):
        return False
    for sign in ("positive", "negative"):
        b = s.get(sign)
        if b and ("packed" not in b or len(b["packed"]) < 2 or b["packed"][0] not in _DTYPE):
            return False
    return True


def _unpack(blobs: list[bytes], codes: list[str]) -> tuple[I64, I64]:
    """All sketches' counts of one sign, concatenated, and how many each has."""
    if all(c == "B" for c in codes):  # the usual case: every count below 256
        lens = np.fromiter(map(len, blobs), np.int64, len(blobs))
        return np.frombuffer(b"".join(blobs), np.uint8).astype(np.int64), lens
    parts = [np.frombuffer(b, _DTYPE[c]).astype(np.int64) for b, c in zip(blobs, codes)]
    lens = np.fromiter((p.size for p in parts), np.int64, len(parts))
    return (np.concatenate(parts) if parts else _EMPTY), lens
