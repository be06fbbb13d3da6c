"""The stored form of a window: :class:`~infersight.stats.windows.WindowStats` ↔ JSON text.

Every engine stores a window's statistics as this text in one column, so the format is the
storage package's, not an engine's. It is JSON (never pickle), and unchanged since stores
were first written: ``{"s": sketches, "h": explicit histograms, "c": counters}``, with each
sketch's bucket counts packed as base64 of the narrowest unsigned type that holds them. Older
stores whose sketches list their counts as plain JSON (``"counts": [...]``) still read.

Example:
    >>> text = encode_window(WindowStats(counters={"missing": {"nan": 2}}))
    >>> text
    '{"s":{},"h":{},"c":{"missing":{"nan":2}}}'
    >>> decode_window(text).counters
    {'missing': {'nan': 2}}
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats

__all__ = ["encode_window", "encode_windows", "encode_windows_parsed", "ParsedRow", "decode_window"]


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

    >>> from infersight.stats.sketch import ExpHistogram
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


def decode_window(text: str) -> WindowStats:
    """A stored window back (every format version this module ever wrote)."""
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
