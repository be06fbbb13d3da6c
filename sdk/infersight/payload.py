"""Turn whatever a predict function receives or returns into named feature columns.

Inputs: a one-row dict, a list of dicts, a dict of columns, numpy 1-D (one row) and 2-D arrays,
pandas DataFrame / Series, pydantic models, scalars and strings. A one-row input stays a plain
``dict`` (``Normalized.row``) because a per-value Python loop beats numpy's per-call overhead
for a single row; batches become numpy columns (``Normalized.columns``).

Outputs: scalars, arrays, class labels, probability matrices (predicted class + its score) and
dicts of those become :class:`Outputs`.

Example:
    >>> n = normalize_inputs({"age": 41, "plan": "pro"})
    >>> n.n_rows, n.row
    (1, {'age': 41, 'plan': 'pro'})
    >>> normalize_inputs([[1.0, 2.0], [3.0, 4.0]], features=["a", "b"]).columns["b"].tolist()
    [2.0, 4.0]
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Normalized", "Outputs", "normalize_inputs", "normalize_outputs", "TEXT_MIN_LENGTH"]

# Strings at least this long are free text (recorded as their length), shorter ones categories.
TEXT_MIN_LENGTH = 64

FeatureSpec = Sequence[str] | Callable[[Any], Any] | None


@dataclass
class Normalized:
    """Named feature values of one call: ``row`` for a single row, ``columns`` for a batch."""

    n_rows: int
    row: dict[str, Any] | None = None
    columns: dict[str, npt.NDArray[Any]] | None = None
    # The float 2-D array the columns were cut from, when there is one (its columns in the
    # order of ``columns``): sketching it whole is cheaper than column by column.
    matrix: npt.NDArray[np.float64] | None = None

    def as_columns(self) -> dict[str, npt.NDArray[Any]]:
        """Columns view, also for a single row (used by schema validation)."""
        if self.columns is not None:
            return self.columns
        out: dict[str, npt.NDArray[Any]] = {}
        for name, value in (self.row or {}).items():
            out[name] = _column([value])
        return out

    def as_records(self, limit: int) -> list[dict[str, Any]] | dict[str, Any]:
        """Plain Python rows for payload logs (at most ``limit`` rows)."""
        if self.row is not None:
            return self.row
        cols = self.columns or {}
        n = min(self.n_rows, limit)
        return [{k: _py(v[i]) for k, v in cols.items()} for i in range(n)]


@dataclass
class Outputs:
    """Predictions of one call by output name: numeric ``values``, class ``labels``, ``nulls``
    (count per kind ``none``/``nan``/``default``) and the number of rows."""

    n_rows: int
    values: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    nulls: dict[tuple[str, str], int] = field(default_factory=dict)


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


_SEQUENCE_TYPES = (list, tuple, np.ndarray)


def _is_sequence(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray)) or _is_pandas(v, "Series")


def _is_pandas(obj: Any, kind: str) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ == kind


def _column(values: Any) -> npt.NDArray[Any]:
    """A numpy column: float64 for numbers (None → NaN), bool for booleans, object otherwise."""
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "OUS" or arr.dtype.kind == "M":
        obj = arr.astype(object) if arr.dtype.kind != "O" else arr
        if obj.ndim != 1:
            return np.array([None if v is None else str(v) for v in obj.reshape(len(obj), -1)], dtype=object)
        # An object column of plain numbers (with None for missing) is numeric.
        if all(v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool)) for v in obj):
            return np.array([np.nan if v is None else float(v) for v in obj], dtype=np.float64)
        return obj
    return arr.astype(object)


def _pandas_column(series: Any) -> npt.NDArray[Any]:
    """Numeric columns as floats (missing → NaN); others as objects with missing → None, since
    pandas writes a missing string as NaN/NA, which is a null here, not a NaN feature value."""
    if series.dtype.kind in "fiub":
        return _column(series.to_numpy())
    values = series.to_numpy(dtype=object, na_value=None)
    return _column(values)


def _names(width: int, features: Sequence[str] | None) -> list[str]:
    if features is not None:
        names = list(features)
        if len(names) == width:
            return names
        raise ValueError(
            f"features= names {len(names)} columns but the input has {width}; "
            "give one name per column"
        )
    return [f"f{i}" for i in range(width)]


def normalize_inputs(obj: Any, features: FeatureSpec = None) -> Normalized:
    """Normalise a predict input to named features (see module doc for accepted shapes).

    ``features`` names the columns of positional inputs (numpy arrays, lists), or is a callable
    deriving named features from a raw input (an image, a text) that is not tabular.

    >>> normalize_inputs(3.5).row
    {'input': 3.5}
    """
    if callable(features):
        return normalize_inputs(features(obj))
    names = features
    if type(obj) is dict and obj:
        # A dict of columns has only sequence values, so one scalar first value settles it:
        # the common one-row case stays a single dict copy.
        if type(next(iter(obj.values()))) not in _SEQUENCE_TYPES:
            return Normalized(1, row=dict(obj))
    if obj is None:
        return Normalized(1, row={})
    if isinstance(obj, Mapping):
        if obj and all(_is_sequence(v) for v in obj.values()):
            lengths = {len(v) for v in obj.values()}
            if len(lengths) == 1:
                n = lengths.pop()
                return Normalized(n, columns={str(k): _column(v) for k, v in obj.items()})
        return Normalized(1, row={str(k): v for k, v in obj.items()})
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return Normalized(1, row={"input": obj.item()})
        if obj.ndim == 1:
            if obj.dtype.names:  # structured array: one row per record
                return Normalized(len(obj), columns={n: _column(obj[n]) for n in obj.dtype.names})
            return Normalized(1, row=dict(zip(_names(obj.shape[0], names), obj.tolist())))
        if obj.size == 0:
            return Normalized(obj.shape[0], columns={})
        flat = obj.reshape(obj.shape[0], -1)
        cols = _names(flat.shape[1], names)
        matrix = flat.astype(np.float64, copy=False) if flat.dtype.kind in "fiu" else None
        if matrix is not None and len(set(cols)) == len(cols):
            return Normalized(flat.shape[0], columns={c: matrix[:, i] for i, c in enumerate(cols)}, matrix=matrix)
        return Normalized(flat.shape[0], columns={c: _column(flat[:, i]) for i, c in enumerate(cols)})
    if _is_pandas(obj, "DataFrame"):
        return Normalized(len(obj), columns={str(c): _pandas_column(obj[c]) for c in obj.columns})
    if _is_pandas(obj, "Series"):
        return Normalized(1, row={str(k): _py(v) for k, v in obj.items()})
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic v2
        return normalize_inputs(obj.model_dump(), names)
    if isinstance(obj, (list, tuple)):
        if not obj:
            return Normalized(0, columns={})
        first = obj[0]
        if isinstance(first, Mapping) or hasattr(first, "model_dump"):
            rows = [r.model_dump() if hasattr(r, "model_dump") else r for r in obj]
            keys: dict[str, None] = {}
            for r in rows:
                keys.update(dict.fromkeys(map(str, r)))
            # A feature absent from a row is recorded as absent, not as null.
            by_name = {k: _column([r.get(k, _ABSENT) for r in rows]) for k in keys}
            return Normalized(len(rows), columns=by_name)
        if _is_sequence(first):
            try:
                arr = np.asarray(obj)
            except ValueError:
                arr = np.asarray(obj, dtype=object)  # ragged: summarised per row below
            if arr.ndim == 2:
                return normalize_inputs(arr, names)
            return Normalized(len(obj), columns={"input": _column([len(r) for r in obj])})
        return normalize_inputs(np.asarray(obj) if all(isinstance(v, numbers.Number) for v in obj)
                                else np.asarray(obj, dtype=object), names)
    if isinstance(obj, (numbers.Number, str, bool)):
        return Normalized(1, row={"input": obj})
    return Normalized(1, row={})


class _AbsentType:
    """Marks a feature missing from one row of a list of dicts."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _AbsentType()
ABSENT = _ABSENT


def _null_kind(v: Any, default: Any) -> str | None:
    if v is None:
        return "none"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if default is not _NO_DEFAULT and _equal(v, default):
        return "default"
    return None


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd types compare ambiguously
        return False


_NO_DEFAULT = object()
NO_DEFAULT = _NO_DEFAULT


def normalize_outputs(
    obj: Any,
    *,
    classes: Sequence[Any] | None = None,
    default: Any = _NO_DEFAULT,
    name: str = "prediction",
) -> Outputs:
    """Normalise a predict output.

    Floats are values (``ml.prediction.value``); strings, booleans and integers are class
    labels (``ml.prediction.class``); a 2-D float matrix with more than one column is read as
    class probabilities: the arg-max class is the label and its probability the ``score``.

    >>> o = normalize_outputs(np.array([[0.1, 0.9], [0.8, 0.2]]), classes=["no", "yes"])
    >>> o.labels["prediction"], o.values["score"].tolist()
    (['yes', 'no'], [0.9, 0.8])
    """
    out = Outputs(n_rows=1)
    _collect_output(obj, name, out, classes, default)
    return out


def _collect_output(obj: Any, name: str, out: Outputs, classes: Sequence[Any] | None, default: Any) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _collect_output(v, str(k), out, classes, default)
        return
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        _collect_output(obj.model_dump(), name, out, classes, default)
        return
    if _is_pandas(obj, "DataFrame") or _is_pandas(obj, "Series"):
        obj = obj.to_numpy()
    if isinstance(obj, (list, tuple)):
        try:
            obj = np.asarray(obj)
        except ValueError:
            obj = np.asarray(obj, dtype=object)
    if isinstance(obj, np.ndarray):
        _collect_array(obj, name, out, classes, default)
        return
    out.n_rows = max(out.n_rows, 1)
    kind = _null_kind(obj, default)
    if kind:
        out.nulls[(name, kind)] = out.nulls.get((name, kind), 0) + 1
        if kind != "default":
            return
    if isinstance(obj, bool) or isinstance(obj, (str, np.str_)) or isinstance(obj, (int, np.integer)):
        out.labels.setdefault(name, []).append(_label(obj, classes))
    elif isinstance(obj, (float, np.floating)):
        if math.isinf(obj):
            out.nulls[(name, "inf")] = out.nulls.get((name, "inf"), 0) + 1
            return
        out.values[name] = np.array([float(obj)])


def _label(v: Any, classes: Sequence[Any] | None) -> str:
    if classes is not None and isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        if 0 <= int(v) < len(classes):
            return str(classes[int(v)])
    return str(v)


def _collect_array(arr: np.ndarray, name: str, out: Outputs, classes: Sequence[Any] | None, default: Any) -> None:
    if arr.ndim == 0:
        _collect_output(arr.item(), name, out, classes, default)
        return
    n = arr.shape[0]
    out.n_rows = max(out.n_rows, n)
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind == "f":
        finite_rows = np.isfinite(arr).all(axis=1)
        bad = int(n - finite_rows.sum())
        if bad:
            out.nulls[(name, "nan")] = out.nulls.get((name, "nan"), 0) + bad
        good = arr[finite_rows]
        idx = good.argmax(axis=1)
        names = classes if classes is not None and len(classes) == arr.shape[1] else None
        out.labels.setdefault(name, []).extend(
            str(names[i]) if names is not None else str(int(i)) for i in idx
        )
        out.values["score"] = good[np.arange(good.shape[0]), idx].astype(np.float64)
        return
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim > 1:
        arr = arr.reshape(n, -1)[:, 0]
    if arr.dtype.kind == "f":
        nan = np.isnan(arr)
        inf = np.isinf(arr)
        if nan.any():
            out.nulls[(name, "nan")] = out.nulls.get((name, "nan"), 0) + int(nan.sum())
        if inf.any():
            out.nulls[(name, "inf")] = out.nulls.get((name, "inf"), 0) + int(inf.sum())
        vals = arr[~(nan | inf)].astype(np.float64)
        if default is not _NO_DEFAULT and isinstance(default, numbers.Real):
            d = int(np.count_nonzero(vals == float(default)))
            if d:
                out.nulls[(name, "default")] = out.nulls.get((name, "default"), 0) + d
        out.values[name] = vals
        return
    labels = out.labels.setdefault(name, [])
    for v in arr.tolist():
        kind = _null_kind(v, default)
        if kind:
            out.nulls[(name, kind)] = out.nulls.get((name, kind), 0) + 1
            if kind != "default":
                continue
        labels.append(_label(v, classes))
