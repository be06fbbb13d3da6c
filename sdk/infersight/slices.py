"""Statistics per slice: the rows of a model's traffic that share the values of a few inputs.

A drift that hits one region, one device type or one customer tier can be too small in all
traffic to be seen (a tenth of the rows, shifted, moves the whole by a tenth) and plain in its
own rows. ``@monitor(slices=["region"])`` keeps, besides the model's statistics, the same
statistics for each value of ``region``: every row goes to its slice, and the slice's feature
and prediction series carry the attribute ``ml.slice`` (``"region=eu"``; several names give
``"device=ios,region=eu"``, names sorted, the format the processor's quality slices use). The
series without ``ml.slice`` stay the model's totals, unchanged; in Prometheus, keep to
``ml_slice=""`` when summing them.

Slices are bounded: past ``max_slices`` distinct keys per model, rows go to the slice whose
values read ``__other__``. A row without a slice input (absent, ``None`` or NaN) goes to the
value ``(missing)``. Calls (durations, batch sizes) are not sliced: latency SLOs read the
model's totals only.

The work is done on the request path only for the models that ask for it: one dict lookup
per row of a one-row call, a grouping of the slice columns for a batch.

Example:
    >>> s = Slicer(["region"])
    >>> s.key({"region": "eu", "age": 41})
    'region=eu'
    >>> [k for k, _, _ in s.partition(normalize_inputs([{"region": "eu"}, {"region": "us"}]))]
    ['region=eu', 'region=us']
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.payload import Normalized, Outputs, normalize_inputs
from infersight.stats.columns import OTHER

__all__ = ["Slicer", "SLICE_ATTRIBUTE", "MISSING", "MAX_SLICES", "sliced_version", "split_version", "split_outputs"]

SLICE_ATTRIBUTE = "ml.slice"
MISSING = "(missing)"
MAX_SLICES = 20
# Joins a model version and a slice key inside the statistics' model key, so a slice's series
# take the model's own path; split back into ml.model.version and ml.slice at export.
_SEP = "\x1f"
_MAX_VALUE = 64  # characters of a slice value kept (the key must stay a bounded label)


def sliced_version(version: str, key: str) -> str:
    """The statistics' version of slice ``key`` of ``version``.

    >>> split_version(sliced_version("3", "region=eu"))
    ('3', 'region=eu')
    """
    return version + _SEP + key


def split_version(version: str) -> tuple[str, str]:
    """``(version, slice key)``; the key is ``""`` for the model's totals."""
    v, sep, key = version.partition(_SEP)
    return (v, key) if sep else (version, "")


def _value_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return MISSING
    if isinstance(v, np.generic):
        v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return MISSING
    text = str(v)
    if "," in text or "=" in text:  # the key's separators
        text = text.replace(",", ";").replace("=", ":")
    return text[:_MAX_VALUE] if text else MISSING


class Slicer:
    """Which slice each row of a model belongs to (bounded per model; thread-safe).

    Args:
        names: the inputs whose values make a slice (each must be a feature name of the rows).
        max_slices: distinct slice keys kept per model; later ones go to ``__other__``.
    """

    def __init__(self, names: Sequence[str], max_slices: int = MAX_SLICES) -> None:
        if isinstance(names, str):
            names = [names]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(
                f"slices={list(names) if not isinstance(names, str) else names!r}: give the names of inputs "
                "whose values make a slice, e.g. slices=['region'] or slices=['region', 'device']"
            )
        if not isinstance(max_slices, int) or isinstance(max_slices, bool) or max_slices < 1:
            raise ValueError(f"max_slices={max_slices!r}: use a whole number of at least 1, e.g. 20")
        self.names = tuple(sorted(set(names)))
        self.max_slices = max_slices
        self._keys: dict[tuple[str, ...], set[str]] = {}  # per model key: the slice keys seen
        self._lock = threading.Lock()

    def key(self, row: Mapping[str, Any]) -> str:
        """The slice key of one row (before the per-model bound)."""
        if len(self.names) == 1:
            return f"{self.names[0]}={_value_text(row.get(self.names[0]))}"
        return ",".join(f"{n}={_value_text(row.get(n))}" for n in self.names)

    def admit(self, model: tuple[str, ...], key: str) -> str:
        """``key`` if the model has room for it (or has it already), else the ``__other__`` key."""
        seen = self._keys.get(model)
        if seen is not None and key in seen:
            return key
        with self._lock:
            seen = self._keys.setdefault(model, set())
            if key in seen:
                return key
            if len(seen) < self.max_slices:
                seen.add(key)
                return key
        return ",".join(f"{n}={OTHER}" for n in self.names)

    def partition(
        self, norm: Normalized, model: tuple[str, ...] = ()
    ) -> list[tuple[str, Normalized, npt.NDArray[np.intp] | None]]:
        """The call's rows by slice: ``(key, rows, their positions in the call)``, positions
        ``None`` when the call is one slice as a whole."""
        if norm.row is not None:
            return [(self.admit(model, self.key(norm.row)), norm, None)]
        if norm.records is not None:
            recs = norm.records
            rows = [r if isinstance(r, Mapping) else _fields(r) for r in recs]
            values = (
                [r.get(self.names[0]) for r in rows]
                if len(self.names) == 1
                else [tuple(r.get(n) for n in self.names) for r in rows]
            )
            return [(key, normalize_inputs([recs[i] for i in idx]), idx) for key, idx in self._groups(model, values)]
        n = norm.n_rows
        if n <= 0:
            return []
        cols = norm.as_columns()
        groups = self._groups(model, self._values(cols, n))
        if len(groups) == 1:
            return [(groups[0][0], norm, None)]
        out: list[tuple[str, Normalized, npt.NDArray[np.intp] | None]] = []
        for key, idx in groups:
            if norm.matrix is not None and norm.names is not None:
                sub = Normalized(n_rows=len(idx), matrix=norm.matrix[idx], names=norm.names, owned=True)
            else:
                sub = Normalized(n_rows=len(idx), columns={k: v[idx] for k, v in cols.items()})
            out.append((key, sub, idx))
        return out

    def _values(self, cols: Mapping[str, Any], n: int) -> list[Any]:
        """Each row's slice values: the value itself for one name, a tuple for several."""
        per_name = [cols[name].tolist() if name in cols else [None] * n for name in self.names]
        return per_name[0] if len(per_name) == 1 else list(zip(*per_name))

    def _text(self, value: Any) -> str:
        if len(self.names) == 1:
            return f"{self.names[0]}={_value_text(value)}"
        return ",".join(f"{n}={_value_text(v)}" for n, v in zip(self.names, value))

    def _groups(self, model: tuple[str, ...], values: list[Any]) -> list[tuple[str, npt.NDArray[np.intp]]]:
        """Row positions per admitted slice key, slices in the order they first appear. The
        key text is made once per distinct value, not per row."""
        index: dict[Any, int] = {}
        try:
            codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.intp, count=len(values))
        except TypeError:  # an unhashable value (a list in a cell): by its text
            index = {}
            texts = [self._text(v) for v in values]
            codes = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.intp, count=len(values))
            distinct: list[str] = list(index)
            keys = [self.admit(model, t) for t in distinct]
        else:
            keys = [self.admit(model, self._text(v)) for v in index]
        slot: dict[str, int] = {}
        group_of = np.fromiter((slot.setdefault(k, len(slot)) for k in keys), dtype=np.intp, count=len(keys))
        labels = list(slot)
        if len(labels) == 1:
            return [(labels[0], np.arange(len(values), dtype=np.intp))]
        gid = group_of[codes]
        return [(label, np.flatnonzero(gid == g)) for g, label in enumerate(labels)]


def split_outputs(outs: Outputs, idx: npt.NDArray[np.intp] | None, n_rows: int) -> Outputs:
    """The outputs of the rows at ``idx`` (all of them when ``None``). Null counts are per
    call, not per row: a sliced call's nulls stay in the model's totals only."""
    if idx is None:
        return outs
    part = Outputs(n_rows=len(idx))
    for name, values in outs.values.items():
        if values.shape[:1] == (n_rows,):
            part.values[name] = values[idx]
    for name, labels in outs.labels.items():
        if len(labels) == n_rows:
            part.labels[name] = [labels[int(i)] for i in idx]
    return part


def _fields(obj: Any) -> Mapping[str, Any]:
    d = getattr(obj, "__dict__", None)
    return d if isinstance(d, Mapping) else {}
