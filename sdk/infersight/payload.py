"""Turn whatever a predict function receives or returns into named feature columns.

Inputs: a one-row dict, a list of dicts, a dict of columns, numpy 1-D (one row) and 2-D arrays,
pandas DataFrame / Series, pydantic models, scalars and strings. A one-row input of any shape
becomes a plain ``dict`` (``Normalized.row``) because a per-value Python loop beats numpy's
per-call overhead for a single row; batches become a numeric matrix (``Normalized.matrix``) or
numpy columns (``Normalized.columns``); a list of dicts stays rows (``Normalized.records``).
Values keep their type: integers stay integers, for the payload logs.

Outputs: scalars, arrays, class labels, probability matrices (predicted class + its score) and
dicts of those become :class:`Outputs`.

Example:
    >>> n = normalize_inputs({"age": 41, "plan": "pro"})
    >>> n.n_rows, n.row
    (1, {'age': 41, 'plan': 'pro'})
    >>> normalize_inputs([[1.0, 2.0], [3.0, 4.0]], features=["a", "b"]).as_columns()["b"].tolist()
    [2.0, 4.0]
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight._extension import speedups as _ext
from infersight.stats.columns import ABSENT, TEXT_MIN_LENGTH

__all__ = ["Normalized", "Outputs", "normalize_inputs", "normalize_outputs", "TEXT_MIN_LENGTH", "ABSENT"]

FeatureSpec = Sequence[str] | Callable[[Any], Any] | None


class Normalized:
    """Named feature values of one call: ``row`` for a single row, ``columns`` for a batch,
    ``records`` for a batch that came as rows (a list of dicts or pydantic models).

    Any one-row input (a 1 × k array, a one-row DataFrame, a list holding one dict, a dict of
    one-element columns, a pydantic model) becomes a ``row``: it then takes the same buffered
    request path as a plain dict. A list of rows stays rows (``records``), so its values are
    classified off the request path exactly as the same rows sent one by one would be.

    A row read from an array or a DataFrame is kept as its names and values (``row_names``,
    ``row_values``, both tuples): the statistics buffer takes exactly those, so its dict, about
    a microsecond for 50 values, is built only when something asks for ``row`` (a schema, a
    payload log).

    >>> n = Normalized(1, row_names=("a", "b"), row_values=(1.5, "x"))
    >>> n.is_row, n.row_items(), n.row
    (True, (('a', 'b'), (1.5, 'x')), {'a': 1.5, 'b': 'x'})
    """

    __slots__ = ("n_rows", "_row", "row_names", "row_values", "columns", "matrix", "records", "names", "owned")

    def __init__(
        self,
        n_rows: int,
        row: dict[str, Any] | None = None,
        columns: dict[str, npt.NDArray[Any]] | None = None,
        matrix: npt.NDArray[Any] | None = None,
        records: Sequence[Mapping[Any, Any]] | None = None,
        names: Sequence[str] | None = None,
        owned: bool = False,
        *,
        row_names: tuple[Any, ...] | None = None,
        row_values: tuple[Any, ...] | None = None,
    ) -> None:
        self.n_rows = n_rows
        self._row = row
        # One row as its distinct names and their values (no dict built yet), or None.
        self.row_names = row_names
        self.row_values = row_values
        self.columns = columns
        # The numeric 2-D array (rows × features, any of float/int dtypes) the columns were cut
        # from, when there is one (its columns in the order of ``columns``): buffered and
        # sketched whole, cheaper than column by column.
        self.matrix = matrix
        self.records = records
        # The names of the matrix's columns. With a matrix, ``columns`` (views of its columns)
        # is made only when something asks for it (:meth:`as_columns`): building 50 views costs
        # more than the rest of a small batch's request path.
        self.names = names
        # Whether ``matrix`` is a copy made here that nothing else holds: buffered as it is (any
        # other matrix is the caller's, who may reuse it, and is copied).
        self.owned = owned

    @property
    def row(self) -> dict[str, Any] | None:
        """The one row as a dict (``None`` for a batch)."""
        row = self._row
        if row is None and self.row_values is not None:
            row = self._row = _row(self.row_names or (), self.row_values)
        return row

    @row.setter
    def row(self, row: dict[str, Any] | None) -> None:
        self._row, self.row_names, self.row_values = row, None, None

    @property
    def is_row(self) -> bool:
        """Whether this is one row (``row`` is not ``None``), without building its dict."""
        return self._row is not None or self.row_values is not None

    def row_items(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The one row's names and values, as two tuples (empty for a batch)."""
        if self.row_values is not None:
            return self.row_names or (), self.row_values
        row = self._row
        if row is None:
            return (), ()
        return tuple(row), tuple(row.values())

    def __repr__(self) -> str:
        shown = {"row": self.row, "columns": self.columns, "matrix": self.matrix, "records": self.records}
        parts = [f"{k}={v!r}" for k, v in shown.items() if v is not None]
        return f"Normalized(n_rows={self.n_rows}{''.join(', ' + p for p in parts)})"

    def feature_names(self) -> Iterable[str]:
        """The names of the features, without building columns (or a row's dict)."""
        if self.row_values is not None:
            return self.row_names or ()
        if self._row is not None:
            return self._row
        if self.names is not None:
            return self.names
        return self.columns or {}

    def as_columns(self) -> dict[str, npt.NDArray[Any]]:
        """Columns view, also for a single row and for records (used by schema validation)."""
        if self.columns is not None:
            return self.columns
        if self.matrix is not None and self.names is not None:
            self.columns = {c: self.matrix[:, i] for i, c in enumerate(self.names)}
            return self.columns
        if self.records is not None:
            keys: dict[str, None] = {}
            for r in self.records:
                keys.update(dict.fromkeys(map(str, r)))
            rows = [r if all(type(k) is str for k in r) else {str(k): v for k, v in r.items()} for r in self.records]
            # A feature absent from a row is recorded as absent, not as null.
            self.columns = {k: _column([r.get(k, ABSENT) for r in rows]) for k in keys}
            return self.columns
        out: dict[str, npt.NDArray[Any]] = {}
        for name, value in (self.row or {}).items():
            out[name] = _column([value])
        return out

    def as_records(self, limit: int, max_bytes: int | None = None) -> list[dict[str, Any]] | dict[str, Any]:
        """Plain Python rows for payload logs (at most ``limit`` rows, and no more than can fit
        in ``max_bytes`` of JSON: every value takes at least 8 bytes there). Values keep their
        type: integers stay integers."""
        if self.row is not None:
            return self.row
        if self.records is not None:
            n = min(self.n_rows, limit, _rows_fitting(max_bytes, len(self.records[0]) if self.records else 1))
            return [dict(r) for r in self.records[:n]]
        if self.matrix is not None and self.names is not None:
            n = min(self.n_rows, limit, _rows_fitting(max_bytes, len(self.names)))
            return [dict(zip(self.names, vals)) for vals in self.matrix[:n].tolist()]
        cols = self.columns or {}
        n = min(self.n_rows, limit, _rows_fitting(max_bytes, len(cols)))
        names = list(cols)
        values = [c[:n].tolist() for c in cols.values()]  # Python scalars, column by column
        return [dict(zip(names, vals)) for vals in zip(*values)]


def _rows_fitting(max_bytes: int | None, width: int) -> int:
    if max_bytes is None:
        return 1 << 62
    return 1 + max_bytes // (8 * max(1, width))


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
_LIST_TYPES = {list, tuple}


def _is_sequence(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray)) or _is_pandas(v, "Series")


def _is_pandas(obj: Any, kind: str) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ == kind


def _column(values: Any) -> npt.NDArray[Any]:
    """A numpy column: numbers stay numbers (integers stay integers, for the payload logs),
    booleans bool, everything else object. An object column of plain numbers is numeric; with
    a ``None`` among them it stays object, so the ``None`` is counted as a null, as it is for
    the same value in a one-row dict."""
    if isinstance(values, np.ndarray):
        arr = values
    else:
        types = set(map(type, values))
        if types and (types <= _NUMBER_TYPES or types == {bool} or types == {str}):
            arr = np.asarray(values)
        else:
            # np.asarray would make [1, "a"] strings and [True, 2] integers: each value keeps
            # its own kind (the one feature model's rule), as it does in a one-row dict.
            arr = np.empty(len(values), dtype=object)
            for i, v in enumerate(values):
                arr[i] = v
            return arr
    if arr.dtype.kind in "fiub":
        return arr
    if arr.dtype.kind in "OUS" or arr.dtype.kind == "M":
        obj = arr.astype(object) if arr.dtype.kind != "O" else arr
        if obj.ndim != 1:
            return np.array([None if v is None else str(v) for v in obj.reshape(len(obj), -1)], dtype=object)
        types = set(map(type, obj.tolist()))
        if types and types <= _NUMBER_TYPES:
            try:
                return np.array(obj.tolist(), dtype=np.float64 if float in types else np.int64)
            except OverflowError:  # an int past int64 (or past a float): value by value
                return obj
        return obj
    return arr.astype(object)


_NUMBER_TYPES = {float, int}


def _pandas_column(series: Any) -> npt.NDArray[Any]:
    """Numeric columns as numbers; others as objects with missing → None, since pandas writes
    a missing string as NaN/NA, which is a null here, not a NaN feature value."""
    return _array_column(series.array)


def _array_column(values: Any) -> npt.NDArray[Any]:
    """One pandas column's values (a numpy array or an extension array) as a numpy column."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "fiub":
            return values
        return _column(values.astype(object))
    if values.dtype.kind in "fiub" and not values.isna().any():
        return _column(np.asarray(values))
    return _column(values.to_numpy(dtype=object, na_value=None))


def _names(width: int, features: Sequence[str] | None) -> Sequence[str]:
    if features is not None:
        if len(features) == width:
            return features
        raise ValueError(f"features= names {len(features)} columns but the input has {width}; give one name per column")
    return _default_names(width)


@functools.lru_cache(maxsize=64)
def _default_names(width: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(width))


def normalize_inputs(obj: Any, features: FeatureSpec = None) -> Normalized:
    """Normalise a predict input to named features (see module doc for accepted shapes).

    ``features`` names the columns of positional inputs (numpy arrays, lists), or is a callable
    deriving named features from a raw input (an image, a text) that is not tabular.

    >>> normalize_inputs(3.5).row
    {'input': 3.5}
    >>> normalize_inputs(np.array([[1, 2]]), features=["a", "b"]).row
    {'a': 1, 'b': 2}
    """
    if callable(features):
        return normalize_inputs(features(obj))
    names = features
    t = type(obj)
    if t is dict and obj:
        # A dict of columns has only sequence values, so one scalar first value settles it:
        # the common one-row case stays a single dict copy.
        first = next(iter(obj.values()))
        if type(first) not in _SEQUENCE_TYPES:
            return Normalized(1, row=dict(obj))
        if type(first) is np.ndarray and first.ndim == 1 and first.shape[0] > 1:
            # a batch of numpy columns ({k: X[:, i]}): straight to the one-matrix reading
            block = _numpy_columns(obj)
            if block is not None:
                return block
    if t is np.ndarray:
        return _from_array(obj, names)
    if t is list or t is tuple:
        return _from_list(obj, names)
    if obj is None:
        return Normalized(1, row={})
    if t in _frame_types or _is_pandas(obj, "DataFrame"):
        _frame_types.add(t)
        return _from_frame(obj)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic v2
        row = _plain_row(obj)
        if row is not None:
            # a plain model's fields are scalars: the row as it is, not normalised again
            # (which would copy it once more)
            return Normalized(1, row=row)
        return normalize_inputs(dict(obj.model_dump()), names)
    if isinstance(obj, Mapping):
        return _from_mapping(obj)
    if isinstance(obj, np.ndarray):
        return _from_array(obj, names)
    if _is_pandas(obj, "Series"):
        return Normalized(1, row={str(k): _py(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return _from_list(obj, names)
    if isinstance(obj, (numbers.Number, str, bool)):
        return Normalized(1, row={"input": obj})
    return Normalized(1, row={})


# The C extension's row builders (``None`` where it is not built, or turned off with
# ``INFERSIGHT_PURE_PYTHON=1``): the Python code beside each call is the reference they follow.
_row_dict: Callable[[Sequence[Any], Sequence[Any]], dict[Any, Any]] | None = getattr(_ext, "row_dict", None)


def _checked_row_of_items(fn: Any) -> Callable[[Any, type], dict[str, Any] | None] | None:
    """The C reader of one-element numpy columns when it reads what ``item()`` gives here, else
    ``None``: it reads float64, int64 and bool values in place, from the leading fields of
    numpy's array and dtype objects; a numpy that moved them turns it off, not wrong."""
    if fn is None:
        return None
    probe = {
        "f": np.array([-1.5e-300]),
        "i": np.array([-(2**62) - 3], dtype=np.int64),
        "l": np.array([7], dtype=np.int_),
        "t": np.array([True]),
        "n": np.array([False]),
        "v": np.arange(3.0)[1:2],
    }
    try:
        got = fn(probe, np.ndarray)
    except Exception:  # noqa: BLE001 - whatever it is, the Python path is the reference
        return None
    want = {k: v.item() for k, v in probe.items()}
    if type(got) is not dict or got != want or any(type(got[k]) is not type(v) for k, v in want.items()):
        return None
    return fn  # type: ignore[no-any-return]


_row_of_items = _checked_row_of_items(getattr(_ext, "row_of_items", None))


def _checked_items_row(fn: Any) -> Callable[[Any, type], tuple[tuple[str, ...], tuple[Any, ...]] | None] | None:
    """The C reader of a dict of one-element columns as (names, values) tuples when it gives
    what the checked ``row_of_items`` gives (its keys and values), else ``None``."""
    if fn is None or _row_of_items is None:
        return None

    def as_dict(columns: Any, array_type: type) -> dict[str, Any] | None:
        got = fn(columns, array_type)
        if type(got) is not tuple or len(got) != 2 or type(got[0]) is not tuple or type(got[1]) is not tuple:
            raise TypeError("not a pair of tuples")
        return dict(zip(got[0], got[1])) if len(got[0]) == len(got[1]) else None

    return fn if _checked_row_of_items(as_dict) is not None else None  # type: ignore[no-any-return]


_items_row = _checked_items_row(getattr(_ext, "items_row", None))
_columns_matrix: Callable[[Any, type, Any], tuple[str, ...] | None] | None = getattr(_ext, "columns_matrix", None)


def _row(names: Sequence[Any], values: Sequence[Any]) -> dict[Any, Any]:
    """``dict(zip(names, values))`` for one row's equally many names and values; in C where
    built (a 50-value row's dict is most of what a one-row array costs beyond a dict's copy)."""
    if _row_dict is not None:
        return _row_dict(names, values)
    return dict(zip(names, values))


# Names seen for one-row inputs, by id: (the names object, a copy of a list's names to see it
# unchanged, the names as a tuple when all distinct, else None).
_names_seen: dict[int, tuple[Any, list[Any] | None, tuple[Any, ...] | None]] = {}


def _distinct_names(names: Sequence[Any]) -> tuple[Any, ...] | None:
    """``names`` as a tuple when no name repeats, else ``None``; remembered for the same names
    object (a list only while its contents stay the same), as a model passes the same
    ``features`` call after call and a DataFrame's names are cached (:func:`_frame_names`)."""
    seen = _names_seen.get(id(names))
    if seen is not None and seen[0] is names and (seen[1] is None or names == seen[1]):
        return seen[2]
    keys = tuple(names)
    distinct = keys if len(set(keys)) == len(keys) else None
    if len(_names_seen) >= 64:
        _names_seen.clear()
    _names_seen[id(names)] = (names, None if type(names) is tuple else list(names), distinct)
    return distinct


def _one_row(names: Sequence[Any], values: list[Any]) -> Normalized:
    """One row of an array or a DataFrame: its names and values as they are, or, when a name
    repeats, the dict ``dict(zip(names, values))`` makes (the last value of a name wins)."""
    keys = _distinct_names(names)
    if keys is None:
        return Normalized(1, row=_row(names, values))
    return Normalized(1, row_names=keys, row_values=tuple(values))


def _from_mapping(obj: Mapping[Any, Any]) -> Normalized:
    if _items_row is not None and type(obj) is dict and obj:
        # One-element numpy columns, in C: the same .item() of each as the Python path below,
        # as names and values (a dict's keys are distinct)
        items = _items_row(obj, np.ndarray)
        if items is not None:
            return Normalized(1, row_names=items[0], row_values=items[1])
    elif _row_of_items is not None and type(obj) is dict and obj:
        # One-element numpy columns, in C: the same .item() of each as the Python path below.
        row = _row_of_items(obj, np.ndarray)
        if row is not None:
            return Normalized(1, row=row)
    first = next(iter(obj.values()), None)
    if type(first) is np.ndarray and first.ndim == 1 and first.shape[0] > 1:
        # A batch of numpy columns (the first is longer than one row): no one-row check.
        block = _numpy_columns(obj)
        if block is not None:
            return block
    if obj and set(map(len, obj.values())) == {1}:
        # The common one-row dict of columns, without a per-value type check: lists, or numpy
        # columns of one dtype (joined, then turned into Python scalars in one call).
        types = set(map(type, obj.values()))
        if types <= _LIST_TYPES:
            return Normalized(1, row={k if type(k) is str else str(k): v[0] for k, v in obj.items()})
        if types == {np.ndarray}:
            try:  # .item() gives the Python scalar (an int stays an int); fails unless one element
                return Normalized(1, row={k if type(k) is str else str(k): v.item() for k, v in obj.items()})
            except ValueError:
                pass
    if obj and type(next(iter(obj.values()))) is np.ndarray:
        block = _numpy_columns(obj)
        if block is not None:
            return block
    if obj and all(_is_sequence(v) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) == 1:
            n = lengths.pop()
            if n == 1:  # a dict of one-element columns is one row
                return Normalized(1, row={str(k): _first(v) for k, v in obj.items()})
            return Normalized(
                n,
                columns={str(k): _pandas_column(v) if _is_pandas(v, "Series") else _column(v) for k, v in obj.items()},
            )
    return Normalized(1, row={str(k): v for k, v in obj.items()})


def _numpy_columns(obj: Mapping[Any, Any]) -> Normalized | None:
    """A dict of equally long 1-D numpy columns of one numeric dtype (``{k: X[:, i]}``) as one
    matrix, the form a 2-D array takes: one ``np.array`` call instead of a check and a buffer
    copy per column. The same values and dtype, so the same statistics and payload logs.
    ``None`` for any other dict (and for one-row ones: a one-row input is a row). Float64
    columns of a plain dict are copied by the C extension where it is built, in one call."""
    if _columns_matrix is not None and type(obj) is dict:
        first = next(iter(obj.values()))
        if first.ndim == 1 and first.dtype == np.float64 and first.shape[0] >= 2:
            out = np.empty((len(obj), first.shape[0]))
            names = _columns_matrix(obj, np.ndarray, out)
            if names is not None:
                return Normalized(first.shape[0], matrix=out.T, names=names, owned=True)
    values = list(obj.values())
    if set(map(type, values)) != {np.ndarray} or len({v.dtype for v in values}) != 1:
        return None
    try:
        feature_major = np.array(values)
    except ValueError:  # ragged
        return None
    if feature_major.ndim != 2 or feature_major.dtype.kind not in "fiu" or feature_major.shape[1] < 2:
        return None
    names = tuple(k if type(k) is str else str(k) for k in obj)
    if len(set(names)) != len(names):
        return None
    return Normalized(feature_major.shape[1], matrix=feature_major.T, names=names, owned=True)


def _first(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return v[0]
    if isinstance(v, np.ndarray):
        return v[:1].tolist()[0] if v.ndim == 1 else v[0]
    return _py(v.iloc[0])  # pandas Series


def _from_array(obj: npt.NDArray[Any], names: Sequence[str] | None) -> Normalized:
    if obj.ndim == 0:
        return Normalized(1, row={"input": obj.item()})
    if obj.ndim == 1:
        if obj.dtype.names:  # structured array: one row per record
            return Normalized(len(obj), columns={n: _column(obj[n]) for n in obj.dtype.names})
        return _one_row(_names(obj.shape[0], names), obj.tolist())
    if obj.size == 0:
        return Normalized(obj.shape[0], columns={})
    flat = obj if obj.ndim == 2 else obj.reshape(obj.shape[0], -1)
    cols = _names(flat.shape[1], names)
    if flat.shape[0] == 1:
        return _one_row(cols, flat[0].tolist())
    if flat.dtype.kind in "fiu" and len(set(cols)) == len(cols):
        return Normalized(flat.shape[0], matrix=flat, names=cols)
    return Normalized(flat.shape[0], columns={c: _column(flat[:, i]) for i, c in enumerate(cols)})


def _from_list(obj: Sequence[Any], names: Sequence[str] | None) -> Normalized:
    if not obj:
        return Normalized(0, columns={})
    first = obj[0]
    if type(first) is dict or hasattr(first, "model_dump") or isinstance(first, Mapping):  # the ABC test last
        # all dicts: checked and copied at C speed (a list of the same dicts, not copies of them)
        rows = list(obj) if type(first) is dict and set(map(type, obj)) == {dict} else _model_dicts(obj)
        if rows is None:
            rows = [r if type(r) is dict else _model_row(r) if hasattr(r, "model_dump") else dict(r) for r in obj]
        if len(rows) == 1:
            return Normalized(1, row=dict(rows[0]))
        return Normalized(len(rows), records=rows)
    if _is_sequence(first):
        try:
            arr = np.asarray(obj)
        except ValueError:
            arr = np.asarray(obj, dtype=object)  # ragged: summarised per row below
        if arr.ndim == 2:
            return _from_array(arr, names)
        return Normalized(len(obj), columns={"input": _column([len(r) for r in obj])})
    return _from_array(
        np.asarray(obj) if all(isinstance(v, numbers.Number) for v in obj) else np.asarray(obj, dtype=object), names
    )


# -- pydantic -----------------------------------------------------------------------------

_PLAIN_ANNOTATIONS = {int, float, str, bool, int | None, float | None, str | None, bool | None}
_plain_models: dict[type, bool] = {}


def _model_row(obj: Any) -> dict[str, Any]:
    """A pydantic model's fields as a dict. ``model_dump()`` costs about 5 µs for 50 fields;
    for a model whose fields are plain scalars, with no computed fields, serializers or extra
    fields, its ``__dict__`` holds exactly what ``model_dump()`` returns, at a dict copy's cost."""
    row = _plain_row(obj)
    return row if row is not None else dict(obj.model_dump())


def _plain_row(obj: Any) -> dict[str, Any] | None:
    """A copy of the ``__dict__`` of a plain model (see :func:`_model_row`), else ``None``."""
    cls = type(obj)
    plain = _plain_models.get(cls)
    if plain is None:
        plain = _plain_models[cls] = _is_plain_model(cls)
    if plain and not getattr(obj, "__pydantic_extra__", None):
        d = getattr(obj, "__dict__", None)
        if type(d) is dict:
            return dict(d)
    return None


def _model_dicts(obj: Sequence[Any]) -> list[dict[str, Any]] | None:
    """The fields of a list of pydantic models of one plain class (see :func:`_model_row`) that
    allows no extra fields: each model's own ``__dict__``, not a copy (a list of dicts is not
    copied either; whatever reads the rows copies what it keeps). ``None`` for other lists."""
    cls = type(obj[0])
    if not hasattr(cls, "model_dump"):
        return None
    plain = _plain_models.get(cls)
    if plain is None:
        plain = _plain_models[cls] = _is_plain_model(cls)
    if not plain or getattr(cls, "model_config", {}).get("extra") == "allow":
        return None
    rows = [r.__dict__ for r in obj if type(r) is cls]  # a model's __dict__ is a dict
    return rows if len(rows) == len(obj) else None


def _is_plain_model(cls: type) -> bool:
    try:
        fields = getattr(cls, "model_fields", None)
        decorators = getattr(cls, "__pydantic_decorators__", None)
        if not fields or decorators is None or getattr(cls, "__pydantic_computed_fields__", None):
            return False
        if decorators.field_serializers or decorators.model_serializers:
            return False
        return all(f.annotation in _PLAIN_ANNOTATIONS for f in fields.values())
    except Exception:  # noqa: BLE001 - anything unexpected: use model_dump()
        return False


# -- pandas -------------------------------------------------------------------------------

_frame_names_cache: tuple[Any, Any, tuple[str, ...]] = (None, None, ())
_frame_types: set[type] = set()  # the DataFrame classes met (no module-name test for them)


def _frame_names(index: Any) -> tuple[str, ...]:
    """Column names of a DataFrame. With pandas 3's Arrow-backed string index, ``tolist()``
    costs about 5 µs for 50 names, more than the rest of a one-row call: the last index's
    names are kept and reused when the next index holds the same Arrow data (compared in C)."""
    global _frame_names_cache
    last_index, last_arrow, last_names = _frame_names_cache
    if index is last_index:
        return last_names
    arrow = getattr(getattr(index, "_values", None), "_pa_array", None)
    if arrow is not None and last_arrow is not None:
        try:
            if arrow.equals(last_arrow):  # about 4 µs: the next call with this index skips it
                _frame_names_cache = (index, arrow, last_names)
                return last_names
        except Exception:  # noqa: BLE001 - a different Arrow type: compute the names
            pass
    names = tuple(c if type(c) is str else str(c) for c in index.tolist())
    _frame_names_cache = (index, arrow, names)
    return names


def _frame_columns(df: Any) -> tuple[list[npt.NDArray[Any]], npt.NDArray[Any] | None]:
    """The columns of a DataFrame as numpy arrays (views where pandas holds numpy data) or,
    when all columns share one numeric numpy block, no columns and that block as a rows ×
    columns matrix.

    Reading the blocks pandas keeps (one 2-D array per dtype) costs about a microsecond;
    going through ``df[name]`` costs about 10 µs per column. Anything unexpected in the
    block layout falls back to the public per-column path."""
    width = len(df.columns)
    try:
        blocks = df._mgr.blocks  # noqa: SLF001 - see the docstring
        if len(blocks) == 1:
            only = blocks[0]
            vals = only.values
            if (
                type(vals) is np.ndarray
                and vals.ndim == 2
                and vals.dtype.kind in "fiu"
                and only.mgr_locs.indexer == _all_columns(width)
            ):
                return [], vals.T
        out: list[Any] = [None] * width
        for b in blocks:
            locs = b.mgr_locs.indexer
            positions = range(*locs.indices(width)) if isinstance(locs, slice) else locs.tolist()
            vals = b.values
            if isinstance(vals, np.ndarray) and vals.ndim == 2:
                for j, pos in enumerate(positions):
                    out[pos] = _array_column(vals[j])
            elif getattr(vals, "ndim", 0) == 1 and len(positions) == 1:
                out[positions[0]] = _array_column(vals)
            else:
                raise TypeError("unexpected block")
        if any(c is None for c in out):
            raise TypeError("unexpected block")
        return out, None
    except Exception:  # noqa: BLE001
        return [_pandas_column(df.iloc[:, i]) for i in range(width)], None


@functools.lru_cache(maxsize=64)
def _all_columns(width: int) -> slice:
    return slice(0, width, 1)


def _from_frame(df: Any) -> Normalized:
    names = _frame_names(df.columns)
    cols, matrix = _frame_columns(df)
    n = matrix.shape[0] if matrix is not None else len(df.index)  # one block: rows x columns
    if n == 1:
        values = matrix[0].tolist() if matrix is not None else [c[:1].tolist()[0] for c in cols]
        return _one_row(names, values)
    if matrix is not None and len(set(names)) == len(names):
        return Normalized(n, matrix=matrix, names=names)
    return Normalized(n, columns=dict(zip(names, cols)))


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
_all_true = np.logical_and.reduce
_isfinite = np.isfinite
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
    if type(obj) is np.ndarray:  # what model.predict answers: straight to the array's reading
        if obj.dtype.kind == "f" and default is _NO_DEFAULT and (obj.ndim == 1 or obj.ndim == 2 and obj.shape[1] == 1):
            # one number a row, all finite: a copy and one check, two ufunc calls (numpy's
            # ``.all()`` wraps its reduce in Python); else the reading below counts what is not
            vals = obj.astype(np.float64).reshape(-1)
            if _all_true(_isfinite(vals)):
                return Outputs(n_rows=max(1, vals.shape[0]), values={name: vals})
        out = Outputs(n_rows=1)
        _collect_array(obj, name, out, classes, default)
    else:
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
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"  # as boolean features and the reference count them
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
        out.labels.setdefault(name, []).extend(str(names[i]) if names is not None else str(int(i)) for i in idx)
        out.values["score"] = good[np.arange(good.shape[0]), idx].astype(np.float64)
        return
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim > 1:
        arr = arr.reshape(n, -1)[:, 0]
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if finite.all():  # the common case: one check, one copy
            vals = arr.astype(np.float64)
        else:
            nan = np.isnan(arr)
            n_nan = int(nan.sum())
            n_inf = int(arr.size - n_nan - finite.sum())
            if n_nan:
                out.nulls[(name, "nan")] = out.nulls.get((name, "nan"), 0) + n_nan
            if n_inf:
                out.nulls[(name, "inf")] = out.nulls.get((name, "inf"), 0) + n_inf
            vals = arr[finite].astype(np.float64)
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
