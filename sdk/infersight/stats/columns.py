"""Tables to named columns, and the kind of each column (numeric, categorical, boolean, text,
array, timestamp).

Profiles and offline drift read whole tables (a DataFrame, a dict of columns, a list of dicts,
a 2-D numpy array, or a file through ``infersight.stats.io``); this module turns them into the same plain
shape the SDK hands to schema validation: ``dict[str, np.ndarray]`` of equal length, float64
for numbers (missing → NaN), bool for booleans, object arrays of ``str`` (``None`` for missing)
for everything else. The kind of a column decides which statistics and drift methods apply.

Example:
    >>> cols, n = to_columns([{"a": 1, "b": "x"}, {"a": 2.5}])
    >>> n, cols["a"].tolist(), cols["b"].tolist()
    (2, [1.0, 2.5], ['x', None])
    >>> infer_kind(cols["a"]), infer_kind(np.array(["x"] * 10 + ["y"] * 10, dtype=object))
    ('numeric', 'categorical')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["KINDS", "to_columns", "infer_kind", "as_numeric", "null_mask", "ABSENT"]

KINDS = ("numeric", "categorical", "boolean", "text", "array", "timestamp")

# A string column with at most this many distinct values (and mostly repeats) is categorical.
MAX_CATEGORIES = 1000


class _Absent:
    """Marks a key missing from one record of a list of dicts (counted as ``absent``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def _is_pandas_frame(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "iloc")


def to_columns(obj: Any, names: Sequence[str] | None = None) -> tuple[dict[str, npt.NDArray[Any]], int]:
    """Normalise a table into ``(columns, n_rows)``.

    Records missing a key get the ``ABSENT`` marker in an object column, so profiles can count
    ``absent`` apart from ``null``; :func:`clean_column` turns it into the usual missing value.
    """
    if _is_pandas_frame(obj):
        cols = {str(c): _from_pandas(obj[c]) for c in obj.columns}
        return cols, int(len(obj))
    if isinstance(obj, Mapping):
        cols = {str(k): _plain(v) for k, v in obj.items()}
        return cols, _same_length(cols)
    if isinstance(obj, np.ndarray):
        if obj.dtype.names:  # structured array: one column per field
            cols = {n: _plain(obj[n]) for n in obj.dtype.names}
            return cols, int(obj.shape[0])
        arr = obj.reshape(-1, 1) if obj.ndim == 1 else obj
        if arr.ndim != 2:
            raise ValueError(f"a {obj.ndim}-D array is not a table; pass a 1-D or 2-D array")
        width = arr.shape[1]
        labels = list(names) if names is not None else [f"f{i}" for i in range(width)]
        if len(labels) != width:
            raise ValueError(f"{len(labels)} column names for a table with {width} columns")
        return {labels[i]: _plain(arr[:, i]) for i in range(width)}, int(arr.shape[0])
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        rows = list(obj)
        if rows and all(isinstance(r, Mapping) for r in rows):
            keys: dict[str, None] = {}
            for r in rows:
                keys.update(dict.fromkeys(map(str, r)))
            cols = {k: _plain([r.get(k, ABSENT) for r in rows]) for k in keys}
            return cols, len(rows)
        return to_columns(np.asarray(rows), names)
    raise TypeError(
        f"cannot read a table from {type(obj).__name__}; pass a pandas DataFrame, a dict of "
        "columns, a list of dicts or a 2-D numpy array"
    )


def _same_length(cols: Mapping[str, npt.NDArray[Any]]) -> int:
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different lengths: {lengths}; every column needs one value per row")
    return next(iter(lengths.values()), 0)


def _from_pandas(series: Any) -> npt.NDArray[Any]:
    kind = series.dtype.kind
    if kind in "biuf":
        return np.asarray(series.to_numpy(), dtype=np.float64 if kind != "b" else bool)
    if kind == "M":
        return series.to_numpy()
    values = series.to_numpy(dtype=object, na_value=None)
    return _plain(values)


def _plain(values: Any) -> npt.NDArray[Any]:
    """numbers → float64, bools → bool, anything else → object with ``None`` for missing."""
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1:
        if arr.ndim == 2:  # a column of fixed-length vectors (embeddings)
            out = np.empty(arr.shape[0], dtype=object)
            out[:] = list(arr)
            return out
        arr = arr.ravel()
    if arr.dtype.kind == "b":
        return arr.astype(bool, copy=False)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind in "US":
        return arr.astype(str).astype(object)
    if arr.dtype.kind == "M":
        return arr
    obj = arr.astype(object, copy=False)
    return _tidy_objects(obj)


def _tidy_objects(obj: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """An object column of numbers (and None) becomes float64; of bools, bool."""
    probe = [v for v in obj[:1000] if v is not None and v is not ABSENT]
    if probe and all(isinstance(v, (bool, np.bool_)) for v in probe):
        if all(isinstance(v, (bool, np.bool_)) or v is None or v is ABSENT for v in obj):
            return obj  # kept as object so that missing booleans stay visible
    if probe and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in probe):
        if all(
            (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))) or v is None or v is ABSENT
            for v in obj
        ):
            if any(v is ABSENT for v in obj):
                return obj
            return np.array([math.nan if v is None else float(v) for v in obj], dtype=np.float64)
    return obj


def null_mask(col: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Rows that are ``None``, ``ABSENT`` or NaN."""
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype.kind == "O":
        # Rich comparisons run in C: ~50x faster than a Python predicate per value.
        # ``v != v`` is True only for NaN; arrays inside cells make it ambiguous, hence the fallback.
        try:
            with np.errstate(invalid="ignore"):
                out = np.equal(col, None) | np.equal(col, ABSENT) | np.asarray(col != col, dtype=bool)
            if out.shape == col.shape:
                return out
        except (ValueError, TypeError):
            pass
        return np.frompyfunc(_is_missing, 1, 1)(col).astype(bool)
    return np.zeros(col.shape[0], dtype=bool)


def _is_missing(v: Any) -> bool:
    return v is None or v is ABSENT or (isinstance(v, float) and math.isnan(v))


def as_numeric(col: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """float64 view of a numeric or boolean column; non-numbers become NaN."""
    if col.dtype.kind in "biuf":
        return col.astype(np.float64, copy=False)

    def conv(v: Any) -> float:
        if isinstance(v, numbers.Real):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return math.nan
        return math.nan

    return np.frompyfunc(conv, 1, 1)(col).astype(np.float64)


def infer_kind(col: npt.NDArray[Any]) -> str:
    """The kind of a column: one of :data:`KINDS`.

    Strings that all parse as numbers are ``numeric`` (CSV files); ISO dates are ``timestamp``;
    strings with few distinct values (at most 1000 and at most half the rows) are
    ``categorical``, other strings ``text`` (profiled by their length).
    """
    k = col.dtype.kind
    if k == "b":
        return "boolean"
    if k in "iuf":
        return "numeric"
    if k == "M":
        return "timestamp"
    present = col[~null_mask(col)] if col.size else col
    if present.size == 0:
        return "numeric"
    sample = present[:2000]
    if all(isinstance(v, (bool, np.bool_)) for v in sample):
        return "boolean"
    if all(isinstance(v, numbers.Real) for v in sample):
        return "numeric"
    if all(isinstance(v, (list, tuple, np.ndarray)) for v in sample):
        return "array"
    strs = [v for v in sample if isinstance(v, str)]
    if len(strs) == len(sample):
        if not np.isnan(as_numeric(np.asarray(strs, dtype=object))).any():
            return "numeric"
        if _looks_like_timestamps(strs[:50]):
            return "timestamp"
        n_unique = len(set(present.tolist())) if present.size <= 200_000 else len(set(present[:200_000].tolist()))
        if n_unique <= MAX_CATEGORIES and n_unique <= max(1, present.size // 2):
            return "categorical"
        return "text"
    return "categorical"


def _looks_like_timestamps(values: Sequence[str]) -> bool:
    if not values or any(len(v) < 10 or v[4:5] != "-" for v in values):
        return False
    try:
        np.array([v.replace("Z", "") for v in values], dtype="datetime64[ns]")
    except (ValueError, TypeError):
        return False
    return True


def clean_column(col: npt.NDArray[Any], kind: str) -> npt.NDArray[Any]:
    """The column in the SDK's shape for its kind (float64 / bool-as-object / object str)."""
    if kind == "numeric":
        if col.dtype.kind == "O":
            return as_numeric(col)
        return col.astype(np.float64, copy=False)
    if col.dtype.kind == "O":
        out = col.copy()
        out[null_mask(col)] = None
        return out
    return col
