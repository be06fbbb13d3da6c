"""The stored form of a window: :class:`~infersight.stats.windows.WindowStats` ↔ bytes or text.

Every engine stores a window's statistics in one column, so the format is the storage
package's, not an engine's. Two forms, told apart by their first byte:

* **binary** (:func:`pack_windows`, what stores write since issue 15): a window holding one
  sketch with finite numbers and no explicit histograms (every feature window, most others),
  as a fixed little-endian header, the bucket counts in the narrowest unsigned width that
  holds them, the sketch's name and the counters' JSON. Half the bytes of the text and read
  with a few array passes instead of a JSON parse and base64;
* **JSON text** (never pickle), unchanged since stores were first written: ``{"s": sketches,
  "h": explicit histograms, "c": counters}``, with each sketch's bucket counts packed as
  base64 of the narrowest unsigned type that holds them (older stores list them as plain JSON,
  ``"counts": [...]``). Every other window is written in this form (as UTF-8 bytes), and rows
  written before the binary form read as they always did.

Example:
    >>> text = encode_window(WindowStats(counters={"missing": {"nan": 2}}))
    >>> text
    '{"s":{},"h":{},"c":{"missing":{"nan":2}}}'
    >>> decode_window(text).counters
    {'missing': {'nan': 2}}
    >>> row = pack_windows([WindowStats({"value": ExpHistogram.from_values([1.0, 2.0])})])[0]
    >>> row[:1], decode_window(row).sketches["value"].count
    (b'\\x01', 2)
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.sketch import Buckets, ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats

__all__ = [
    "encode_window",
    "encode_windows",
    "encode_windows_parsed",
    "ParsedRow",
    "decode_window",
    "pack_windows",
    "BINARY",
    "HEADER",
    "binary_header",
    "pack_columns",
]


def encode_window(ws: WindowStats) -> str:
    """The stored text of one window (``{"s": sketches, "h": histograms, "c": counters}``)."""
    # Written by hand rather than through json.dumps of nested dicts: this runs once per
    # stored window on the commit path. The text is what json.dumps would write.
    sketches = ",".join(f"{_key_json(k)}:{_sketch_json(v)}" for k, v in ws.sketches.items())
    hists = _dumps({k: v.to_dict() for k, v in ws.histograms.items()}) if ws.histograms else "{}"
    counters = _dumps(ws.counters) if ws.counters else "{}"
    return f'{{"s":{{{sketches}}},"h":{hists},"c":{counters}}}'


def encode_windows(items: Sequence[WindowStats]) -> list[str]:
    """``[encode_window(ws) for ws in items]``, with the bucket counts of every sketch packed
    in a few whole-array passes instead of a few numpy calls per sketch."""
    return encode_windows_parsed(items)[0]


# What a stored row holding one sketch and nothing else reads as, field by field, in the order
# of the text: sketch name, scale, zero_count, count, sum, min, max, max_size, positive offset,
# code and base64 (code None when there are no positive buckets), the same for negative, and the
# counters' JSON text. ``StoredRows.parse`` takes it instead of reading the text.
ParsedRow = tuple[str, int, int, int, float, float, float, int, int, str | None, str, int, str | None, str, str]


def encode_windows_parsed(items: Sequence[WindowStats]) -> tuple[list[str], list[ParsedRow | None]]:
    """:func:`encode_windows`, and per window the fields of its text already parsed (a
    :data:`ParsedRow`) when the text has the one-sketch form compaction reads without parsing
    (one sketch with finite numbers, no explicit histograms), else ``None``.

    >>> from infersight.stats.sketch import Buckets, ExpHistogram
    >>> texts, parsed = encode_windows_parsed([WindowStats({"value": ExpHistogram.from_values([1.0])})])
    >>> parsed[0][:4]
    ('value', 20, 0, 1)
    """
    sketches = [s for ws in items for s in ws.sketches.values()]
    packed = _pack_many([b.counts for s in sketches for b in (s.positive, s.negative)])
    out = []
    parsed: list[ParsedRow | None] = []
    i = 0
    for ws in items:
        parts = []
        for k, s in ws.sketches.items():
            parts.append(f"{_key_json(k)}:{_sketch_json(s, packed[i], packed[i + 1])}")
            i += 2
        hists = _dumps({k: v.to_dict() for k, v in ws.histograms.items()}) if ws.histograms else "{}"
        counters = _dumps(ws.counters) if ws.counters else "{}"
        out.append(f'{{"s":{{{",".join(parts)}}},"h":{hists},"c":{counters}}}')
        row: ParsedRow | None = None
        if len(parts) == 1 and hists == "{}":
            ((k, s),) = ws.sketches.items()
            p, n = packed[i - 2], packed[i - 1]
            named = _NAMED.get(k)
            if named is None:
                named = _NAMED[k] = bool(_NAME.fullmatch(k)) if len(_NAMED) < 1000 else False
            if named and math.isfinite(s.sum) and math.isfinite(s.min) and math.isfinite(s.max):
                # numbers as the sketch holds them: the reader converts them as it converts text
                row = (
                    k,
                    s.scale,
                    s.zero_count,
                    s.count,
                    s.sum,
                    s.min,
                    s.max,
                    s.max_size,
                    s.positive.offset if p else 0,
                    p[:1] or None,
                    p[1:],
                    s.negative.offset if n else 0,
                    n[:1] or None,
                    n[1:],
                    counters,
                )
        parsed.append(row)
    return out, parsed


_NAME = re.compile(r"[A-Za-z0-9_.]+")  # a sketch name the reader's regular expression takes
_NAMED: dict[str, bool] = {}


def decode_window(text: str | bytes) -> WindowStats:
    """A stored window back (every format version this module ever wrote: the binary form,
    JSON text as ``str`` or as UTF-8 ``bytes``)."""
    if isinstance(text, (bytes, bytearray, memoryview)) and text[:1] == _MAGIC:
        return _unpack_binary(bytes(text))
    d = json.loads(text)
    return WindowStats(
        {k: _unpack_sketch(v) for k, v in d.get("s", {}).items()},
        {k: ExplicitHistogram.from_dict(v) for k, v in d.get("h", {}).items()},
        d.get("c", {}),
    )


def _dumps(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"))


_KEY_JSON: dict[str, str] = {}


def _key_json(name: str) -> str:
    """A sketch name as JSON text (there are a handful: ``value``, ``duration``, ...)."""
    text = _KEY_JSON.get(name)
    if text is None:
        text = _dumps(name)
        if len(_KEY_JSON) < 1000:
            _KEY_JSON[name] = text
    return text


def _sketch_json(s: ExpHistogram, pos: str | None = None, neg: str | None = None) -> str:
    """``_dumps(_compact_sketch(s))``, faster for the usual sketch (finite numbers); ``pos`` and
    ``neg`` are the packed counts when the caller has them already."""
    if not (math.isfinite(s.sum) and math.isfinite(s.min) and math.isfinite(s.max)):
        return _dumps(_compact_sketch(s))
    text = (
        f'{{"scale":{int(s.scale)},"zero_count":{int(s.zero_count)},"count":{int(s.count)},'
        f'"sum":{float(s.sum)!r},"min":{float(s.min)!r},"max":{float(s.max)!r},"max_size":{int(s.max_size)}'
    )
    if s.positive.counts.size:
        text += f',"positive":{{"offset":{int(s.positive.offset)},"packed":"{pos or _pack(s.positive.counts)}"}}'
    if s.negative.counts.size:
        text += f',"negative":{{"offset":{int(s.negative.offset)},"packed":"{neg or _pack(s.negative.counts)}"}}'
    return text + "}"


def _compact_sketch(s: ExpHistogram) -> dict[str, Any]:
    """A sketch as stored: bucket counts packed as base64 of the narrowest unsigned type that
    holds them (most windows need one byte per bucket), because JSON lists of integers were
    most of the ingest cost and most of a row's bytes."""
    d: dict[str, Any] = {
        "scale": s.scale,
        "zero_count": s.zero_count,
        "count": s.count,
        "sum": s.sum,
        "min": None if math.isnan(s.min) else s.min,
        "max": None if math.isnan(s.max) else s.max,
        "max_size": s.max_size,
    }
    for sign, b in (("positive", s.positive), ("negative", s.negative)):
        if b.counts.size:
            d[sign] = {"offset": b.offset, "packed": _pack(b.counts)}
    return d


def _pack(counts: np.ndarray) -> str:
    top = int(counts.max())
    code = "B" if top < 2**8 else "H" if top < 2**16 else "I" if top < 2**32 else "Q"
    return (
        code
        + base64.b64encode(counts.astype("<" + {"B": "u1", "H": "u2", "I": "u4", "Q": "u8"}[code]).tobytes()).decode()
    )


_CODES = (("B", "<u1", 2**8), ("H", "<u2", 2**16), ("I", "<u4", 2**32), ("Q", "<u8", 2**64))


def _pack_many(arrays: Sequence[np.ndarray]) -> list[str]:
    """``_pack`` of each array ("" for an empty one), converting all arrays of one width at once."""
    out = [""] * len(arrays)
    full = [i for i, a in enumerate(arrays) if a.size]
    if not full:
        return out
    lens = np.fromiter((arrays[i].size for i in full), np.int64, len(full))
    flat = np.concatenate([arrays[i] for i in full])
    starts = np.cumsum(lens) - lens
    tops = np.maximum.reduceat(flat, starts)
    lo = 0
    for code, dtype, limit in _CODES:
        mine = np.flatnonzero((tops >= lo) & (tops < limit)) if limit < 2**64 else np.flatnonzero(tops >= lo)
        lo = limit
        if not mine.size:
            continue
        width = np.dtype(dtype).itemsize
        data = flat.astype(dtype).tobytes()
        b64 = base64.b64encode
        for j, a, n in zip(mine.tolist(), (starts[mine] * width).tolist(), (lens[mine] * width).tolist()):
            out[full[j]] = code + b64(data[a : a + n]).decode()
    return out


def _unpack_sketch(d: dict[str, Any]) -> ExpHistogram:
    for sign in ("positive", "negative"):
        b = d.get(sign)
        if b and "packed" in b:
            code, data = b["packed"][0], b["packed"][1:]
            dtype = "<" + {"B": "u1", "H": "u2", "I": "u4", "Q": "u8"}[code]
            d[sign] = {"offset": b["offset"], "counts": np.frombuffer(base64.b64decode(data), dtype).astype(np.int64)}
    return ExpHistogram.from_dict(d)


# -- the binary form -------------------------------------------------------------------------

BINARY = 1  # the first byte of a row in the binary form (a JSON row starts with "{")
_MAGIC = bytes([BINARY])

#: The binary form's fixed header, little-endian, unaligned; after it come the positive then
#: the negative bucket counts (``width`` bytes each, unsigned), the sketch's name (UTF-8) and
#: the counters' JSON (UTF-8, empty for none).
HEADER = np.dtype(
    [
        ("magic", "u1"),
        ("scale", "i1"),
        ("width", "u1"),
        ("name_len", "u1"),
        ("zero_count", "<i8"),
        ("count", "<i8"),
        ("sum", "<f8"),
        ("min", "<f8"),
        ("max", "<f8"),
        ("max_size", "<i8"),
        ("pos_off", "<i8"),
        ("pos_len", "<u4"),
        ("neg_off", "<i8"),
        ("neg_len", "<u4"),
        ("ctr_len", "<u4"),
    ]
)
_HEADER_STRUCT = struct.Struct("<BbBBqqdddqqIqII")  # HEADER, field for field
_WIDTHS = ((1, "<u1", 2**8), (2, "<u2", 2**16), (4, "<u4", 2**32), (8, "<u8", 2**63))
_UNSIGNED = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}
_SCALARS = attrgetter("scale", "zero_count", "count", "sum", "min", "max", "max_size")
_SIGNS = attrgetter("positive", "negative")
_NAME_BYTES: dict[str, bytes] = {}


def _binary_name(name: str) -> bytes | None:
    """A sketch name as the binary form stores it, or ``None`` if too long for its header."""
    got = _NAME_BYTES.get(name)
    if got is None:
        got = name.encode()
        if len(got) > 255:
            return None
        if len(_NAME_BYTES) < 1000:
            _NAME_BYTES[name] = got
    return got


def pack_windows(items: Sequence[WindowStats]) -> list[bytes]:
    """Each window's stored bytes: the binary form where the window holds exactly one sketch
    (count above zero, finite sum, min and max, scale in a byte) and no explicit histograms;
    the JSON text of :func:`encode_window`, as UTF-8, otherwise. The headers and bucket counts
    of all binary rows are packed in a few whole-array passes.

    >>> from infersight.stats.sketch import Buckets, ExpHistogram
    >>> rows = pack_windows([WindowStats({"value": ExpHistogram.from_values([1.0, 3.0])}), WindowStats()])
    >>> [decode_window(r).sketches.get("value", ExpHistogram()).count for r in rows], rows[1]
    ([2, 0], b'{"s":{},"h":{},"c":{}}')
    """
    out: list[bytes] = [b""] * len(items)
    rows: list[int] = []
    sketches: list[ExpHistogram] = []
    names: list[bytes] = []
    for r, ws in enumerate(items):
        sk = ws.sketches
        if len(sk) == 1 and not ws.histograms:
            ((name, s),) = sk.items()
            nb = _binary_name(name)
            if (
                nb is not None
                and s.count > 0
                and -128 <= s.scale < 128
                and math.isfinite(s.sum)
                and math.isfinite(s.min)
                and math.isfinite(s.max)
            ):
                rows.append(r)
                sketches.append(s)
                names.append(nb)
                continue
        out[r] = encode_window(ws).encode()
    if not rows:
        return out
    scalars = list(zip(*map(_SCALARS, sketches)))
    pos, neg = zip(*map(_SIGNS, sketches))
    arrays = [b.counts for pair in zip(pos, neg) for b in pair]
    n = len(rows)
    lens = np.fromiter(map(len, arrays), np.int64, 2 * n)
    pos_len, neg_len = lens[0::2], lens[1::2]
    ctr = [_dumps(c).encode() if c else b"" for c in (items[r].counters for r in rows)]
    packed = pack_columns(
        {k: np.asarray(v) for k, v in zip(("scale", "zero_count", "count", "sum", "min", "max", "max_size"), scalars)},
        np.where(pos_len > 0, np.fromiter((b.offset for b in pos), np.int64, n), 0),
        pos_len,
        np.where(neg_len > 0, np.fromiter((b.offset for b in neg), np.int64, n), 0),
        neg_len,
        np.concatenate(arrays) if lens.any() else np.zeros(0, np.int64),
        names,
        ctr,
    )
    for r, row in zip(rows, packed):
        out[r] = row
    return out


def pack_columns(
    scalars: dict[str, npt.NDArray[Any]],
    pos_off: npt.NDArray[np.int64],
    pos_len: npt.NDArray[np.int64],
    neg_off: npt.NDArray[np.int64],
    neg_len: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    names: Sequence[bytes],
    counters: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Rows in the binary form from sketches given as columns (one entry per row):
    ``scalars`` holds ``scale``, ``zero_count``, ``count``, ``sum``, ``min``, ``max`` and
    ``max_size``; ``counts`` every row's bucket counts, row after row, positive then negative;
    ``names`` each sketch's name (UTF-8), ``counters`` each row's counters as JSON (UTF-8, empty
    for none). The caller makes sure the rows are ones :func:`pack_windows` writes in this
    form (count above zero, finite numbers): the ingest path packs the windows it folds
    without making a sketch object per window.

    >>> one = {"scale": np.array([0]), "zero_count": np.array([0]), "count": np.array([3]),
    ...        "sum": np.array([5.0]), "min": np.array([1.0]), "max": np.array([3.0]), "max_size": np.array([160])}
    >>> z = np.zeros(1, np.int64)
    >>> row = pack_columns(one, z, np.array([2]), z, z, np.array([1, 2]), [b"value"])[0]
    >>> decode_window(row).sketches["value"].positive.counts.tolist()
    [1, 2]
    """
    n = len(names)
    head = np.zeros(n, HEADER)
    head["magic"] = BINARY
    for field in ("scale", "zero_count", "count", "sum", "min", "max", "max_size"):
        head[field] = scalars[field]
    head["pos_off"], head["pos_len"], head["neg_off"], head["neg_len"] = pos_off, pos_len, neg_off, neg_len
    head["name_len"] = np.fromiter(map(len, names), np.int64, n)
    row_len = pos_len + neg_len
    ends = np.cumsum(row_len)
    starts = ends - row_len
    tops = np.zeros(n, np.int64)
    full = row_len > 0
    if counts.size:
        tops[full] = np.maximum.reduceat(counts, starts[full])
    width = np.full(n, 8, np.int64)
    for w, _, limit in reversed(_WIDTHS):
        width[tops < limit] = w
    head["width"] = width
    ctr = counters if counters is not None else [b""] * n
    if counters is not None:
        head["ctr_len"] = np.fromiter(map(len, ctr), np.int64, n)
    hb = head.tobytes()
    size = HEADER.itemsize
    uniq = np.unique(width).tolist()
    data = {w: counts.astype(_UNSIGNED[w]).tobytes() for w in uniq}
    a_s, b_s = starts.tolist(), ends.tolist()
    join = b"".join
    if len(uniq) == 1:  # the usual case: one width for the whole batch
        w = uniq[0]
        d = data[w]
        if w != 1:
            a_s, b_s = (starts * w).tolist(), (ends * w).tolist()
        return [
            join((hb[at : at + size], d[a:b], nm, c))
            for at, a, b, nm, c in zip(range(0, n * size, size), a_s, b_s, names, ctr)
        ]
    out = []
    for at, w, a, b, nm, c in zip(range(0, n * size, size), width.tolist(), a_s, b_s, names, ctr):
        out.append(join((hb[at : at + size], data[w][a * w : b * w], nm, c)))
    return out


def _unpack_binary(row: bytes) -> WindowStats:
    """One row in the binary form back (what :func:`decode_window` does for it)."""
    size = HEADER.itemsize
    if len(row) < size:
        raise ValueError(f"stored window of {len(row)} bytes is shorter than its header ({size}); the row is corrupt")
    # struct, not the numpy record: a dozen scalar reads off a numpy record cost more than
    # the rest of the decode (this runs once per row the evaluation reads)
    (
        _,
        scale,
        width,
        name_len,
        zero,
        count,
        total_sum,
        lo,
        hi,
        max_size,
        pos_off,
        pos_len,
        neg_off,
        neg_len,
        ctr_len,
    ) = _HEADER_STRUCT.unpack_from(row)
    dtype = _UNSIGNED.get(width)
    end_counts = size + width * (pos_len + neg_len)
    if dtype is None or len(row) != end_counts + name_len + ctr_len:
        raise ValueError(f"stored window of {len(row)} bytes does not match its header; the row is corrupt")
    counts = np.frombuffer(row, dtype, pos_len + neg_len, size).astype(np.int64)
    name = row[end_counts : end_counts + name_len].decode()
    ctr = row[end_counts + name_len :]
    sketch = ExpHistogram(
        scale,
        zero,
        Buckets(pos_off, counts[:pos_len]),
        Buckets(neg_off, counts[pos_len:]),
        count,
        total_sum,
        lo,
        hi,
        max_size,
    )
    total = int(np.add.reduce(counts)) if counts.size else 0
    if sketch.count != sketch.zero_count + total:
        raise ValueError(
            f"sketch count {sketch.count} != zero_count {sketch.zero_count} + bucket counts {total}; the sketch is corrupt"
        )
    return WindowStats({name: sketch}, {}, json.loads(ctr) if ctr else {})


def binary_header(rows: Sequence[bytes]) -> tuple[npt.NDArray[np.void], npt.NDArray[np.int64], bytes]:
    """The headers of rows in the binary form (one array, one record per row), where each row
    starts in the joined bytes, and the joined bytes: for readers of many rows at once."""
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    starts = np.cumsum(lens) - lens
    joined = b"".join(rows)
    size = HEADER.itemsize
    if (lens < size).any():
        raise ValueError(f"a stored window shorter than its header ({size} bytes); the row is corrupt")
    raw = np.frombuffer(joined, np.uint8)
    head = raw[starts[:, None] + np.arange(size)].copy().view(HEADER).ravel()
    return head, starts, joined
