"""Batch rows: the base windows of many series of one model and one window in one stored row.

An exporter sends every series of a model (e.g. its 100 features) for one window in one
request, one point per series. Stored a row per series, the database pays an insert, an index
entry, a claim and a read-back per point, which is most of what the processor spends per point
in that pattern. A batch row holds them all: the series' names (``version``, ``role``,
``name``) as a JSON list in one column, which repeats from window to window and is parsed once
per distinct text, and their stored windows (:func:`~infersight.processor.storage.codec.pack_windows`
bytes, unchanged) one after the other in another, behind a table of their lengths.

Every reader of base windows splits a batch row back into the windows it holds, so what it
answers is what the same windows stored a row each would give.

Example:
    >>> names = batch_names([("1", "feature", "a"), ("1", "feature", "b")])
    >>> names
    '[["1","feature","a"],["1","feature","b"]]'
    >>> data = pack_batch([b"first", b"second!"])
    >>> split_batch(data)
    [b'first', b'second!']
    >>> read_names(names)[1], find_series(names)[("feature", "b")]
    (('1', 'feature', 'b'), ((1, '1'),))
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Sequence

import numpy as np

__all__ = ["pack_batch", "split_batch", "batch_names", "names_text", "read_names", "find_series", "Series"]

# (version, role, name): one series of a model
Series = tuple[str, str, str]

_COUNT = struct.Struct("<I")


def pack_batch(parts: Sequence[bytes]) -> bytes:
    """One batch row's data: how many windows, each one's length (little-endian ``uint32``),
    then the windows' bytes in the order of the row's names."""
    lens = np.fromiter(map(len, parts), np.uint32, len(parts))
    return _COUNT.pack(len(parts)) + lens.tobytes() + b"".join(parts)


def split_batch(data: bytes | memoryview) -> list[bytes]:
    """The windows' bytes of a batch row, in the order of its names."""
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"a batch row of {len(data)} bytes has no count; the row is corrupt")
    (n,) = _COUNT.unpack_from(data)
    head = 4 + 4 * n
    lens = np.frombuffer(data, np.uint32, n, 4).astype(np.int64)
    ends = (np.cumsum(lens) + head).tolist()
    if (ends[-1] if n else head) != len(data):
        raise ValueError(
            f"a batch row of {len(data)} bytes whose {n} windows' lengths add up to "
            f"{(ends[-1] if n else head) - head} bytes after its {head}-byte table; the row is corrupt"
        )
    return [data[lo:hi] for lo, hi in zip([head, *ends], ends)]


def batch_names(series: Sequence[Series]) -> str:
    """The names column of a batch row holding ``series`` (in that order)."""
    return json.dumps([list(s) for s in series], separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def names_text(series: tuple[Series, ...]) -> str:
    """:func:`batch_names` of ``series``, made once per distinct tuple (an exporter's batches
    of one model list the same series window after window).

    >>> names_text((("1", "feature", "a"),)) == batch_names([("1", "feature", "a")])
    True
    """
    return batch_names(series)


@functools.lru_cache(maxsize=4096)
def read_names(text: str) -> tuple[Series, ...]:
    """The series a batch row's names column lists (parsed once per distinct text: an
    exporter's batches of one model repeat it window after window)."""
    got = json.loads(text)
    return tuple((str(v), str(r), str(n)) for v, r, n in got)


@functools.lru_cache(maxsize=4096)
def find_series(text: str) -> dict[tuple[str, str], tuple[tuple[int, str], ...]]:
    """Where each (role, name) is in a batch row's names: ``{(role, name): ((index, version), ...)}``
    (a series may be there once per version)."""
    at: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for i, (version, role, name) in enumerate(read_names(text)):
        at.setdefault((role, name), []).append((i, version))
    return {k: tuple(v) for k, v in at.items()}
