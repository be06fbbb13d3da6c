"""Per-model statistics of inputs, outputs and calls, kept between metric exports.

The request path does as little as it can: a one-row call appends its row (a dict) and its
duration to per-model lists; a batch of columns (a 2-D array, a DataFrame, a dict of columns)
is copied into a per-model buffer, and numeric outputs likewise; a list of rows with the same
names becomes such batches where the C extension is built (else, and for odd rows, each row is
appended as a one-row call's is). Classifying row values, sketching (all numeric columns of the
buffered calls in one numpy pass) and merging happen off the request path: at export
(:meth:`drain`, which turns everything into OpenTelemetry metric points with delta
temporality) or, when buffers grow, in the exporter thread (:meth:`compact`), so memory stays
bounded without making one unlucky request pay for everyone's bookkeeping. A batch too big to be worth buffering is
sketched at once.

Example:
    >>> acc = FeatureStats(max_categories=10, max_attribute_sets=100)
    >>> acc.record_row(("churn", "1"), {"age": 41.0, "plan": "pro", "income": None})
    >>> [m.name for m in acc.drain(0, 1)][:3]
    ['ml.feature.value', 'ml.feature.category', 'ml.feature.missing']
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.metrics.export import Buckets as OtelBuckets

from infersight._extension import speedups as _ext
from infersight.payload import Normalized, Outputs
from infersight.slices import _SEP as _SLICE_SEP
from infersight.slices import SLICE_ATTRIBUTE, split_version
from infersight.stats.columns import OTHER, split_values
from infersight.stats.sketch import ExpHistogram

__all__ = ["FeatureStats", "ModelKey", "DURATION_BOUNDS", "OTHER", "OVERFLOW_ATTRIBUTES"]

ModelKey = tuple[str, str]  # (model name, model version)

OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}
_OVERFLOW_ATTRS = tuple(OVERFLOW_ATTRIBUTES.items())
_OVERFLOW = "\x00overflow"  # series key of values past the attribute-set bound
# Seconds; fine at the low end where model latency SLOs live (OTel's HTTP defaults start at 5 ms).
DURATION_BOUNDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.2,
    0.25,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)
_NUMBERS = {float, int}  # column value types sketched as numbers at once (bool is not int here)
_COMPACT_AT = 2048  # buffered calls per model before the exporter thread is asked to compact
_HARD_LIMIT = 8192  # if the exporter thread cannot keep up, the request path compacts itself
# Buffered rows are bounded in bytes rather than rows (a row of 200 features holds ten times
# what a row of 20 does): the exporter thread is woken when a model's rows hold about
# _ROW_WAKE_BYTES, and past _ROW_HARD_BYTES the request path compacts them itself. A row costs
# about _ROW_BYTES plus _VALUE_BYTES a value (its tuples, a pointer and, unless shared, the
# value's own object). The peak is what the allocator keeps afterwards when the exporter lags.
_ROW_WAKE_BYTES = 2 << 20
_ROW_HARD_BYTES = 4 << 20
_ROW_BYTES = 256
_VALUE_BYTES = 40
# The same for buffered batch columns and outputs, in values (8 bytes each when numeric): the
# exporter thread is woken at 2 MiB of them, as for rows. A compaction costs about 3 µs a
# feature beyond its values (each feature's sketch made and merged): at 1 MiB a 10 x 50 batch
# call paid about 3 µs of it, a tenth of its cost.
_COMPACT_VALUES = 1 << 18
_HARD_VALUES = 1 << 20  # a batch this big alone is sketched at once, not buffered
# Buffered rows are converted to numbers this many values at a time: one big temporary per
# compaction raised glibc's mmap threshold and left the freed memory in its arenas.
_CONVERT_VALUES = 1 << 16


def row_limits(width: int) -> tuple[int, int]:
    """The buffered rows of ``width`` values at which the exporter thread is woken and at
    which the request path compacts (see ``_ROW_WAKE_BYTES``).

    >>> row_limits(20)
    (1985, 3971)
    """
    per_row = _ROW_BYTES + _VALUE_BYTES * width
    return max(64, _ROW_WAKE_BYTES // per_row), max(256, _ROW_HARD_BYTES // per_row)


# A series' sketches between exports are merged into one past this many. The sketches of one
# compaction share its bucket counts (2.6 KB a feature), kept while any of them is: at 64,
# 64 compactions' counts (3.3 MB at 20 features) were held until the fold, part of the peak
# the allocator keeps. Merging costs about the same per sketch however many are merged at
# once (5.7 µs a sketch at 17, 5.5 at 65), so folding sooner costs next to nothing.
_FOLD_AT = 16

_LIMITS = [row_limits(k) for k in range(257)]  # by width, looked up on the request path


def _block_of(norm: Normalized) -> tuple[tuple[str, ...], Any]:
    """The names and data a batch is buffered as: its rows x names matrix, or one array per
    name; copied (the caller may reuse its arrays) unless the batch owns it or is sketched at
    once."""
    matrix = norm.matrix
    data: Any
    if matrix is not None and norm.names is not None:
        names = tuple(norm.names)
        data = matrix
    else:
        cols = norm.as_columns()
        names = tuple(cols)
        data = tuple(cols.values())
    if norm.n_rows * max(len(names), 1) < _HARD_VALUES and not (norm.owned and data is matrix):
        data = np.array(data) if isinstance(data, np.ndarray) else tuple(np.array(c) for c in data)
    return names, data


def _limits(width: int) -> tuple[int, int]:
    return _LIMITS[width] if width < 257 else row_limits(width)


# The C extension's converter of a list of dicts into a matrix (``None`` where it is not built,
# or turned off with ``INFERSIGHT_PURE_PYTHON=1``); the row-by-row buffering is the reference.
_records_matrix: Any = getattr(_ext, "records_matrix", None)


@dataclass
class _Numeric:
    """Sketches of one series, merged at export (or when too many pile up)."""

    sketches: list[ExpHistogram] = field(default_factory=list)

    def fold(self) -> None:
        if len(self.sketches) > _FOLD_AT:  # bound memory between exports
            self.sketches = [ExpHistogram.merge_all(self.sketches)]

    def result(self) -> ExpHistogram | None:
        self.fold()
        if not self.sketches:
            return None
        return self.sketches[0] if len(self.sketches) == 1 else ExpHistogram.merge_all(self.sketches)


@dataclass
class _Hist:
    """Explicit-bucket histogram (bucket i holds (bounds[i-1], bounds[i]], as in OTel)."""

    bounds: tuple[float, ...]
    counts: npt.NDArray[np.int64] | None = None
    total: float = 0.0
    n: int = 0
    lo: float = math.inf
    hi: float = -math.inf

    def add_many(self, values: npt.NDArray[np.float64]) -> None:
        if values.size == 0:
            return
        c = np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self.bounds) + 1)
        self.counts = c if self.counts is None else self.counts + c
        self.total += float(values.sum())
        self.n += int(values.size)
        self.lo = min(self.lo, float(values.min()))
        self.hi = max(self.hi, float(values.max()))

    def merge(self, other: _Hist) -> None:
        if other.counts is None:
            return
        self.counts = other.counts.copy() if self.counts is None else self.counts + other.counts
        self.total += other.total
        self.n += other.n
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)


Attrs = tuple[tuple[str, Any], ...]


class _State:
    """Everything recorded since the last export (or compaction)."""

    def __init__(self) -> None:
        self.numeric: dict[tuple[str, str, str, str], _Numeric] = {}  # metric, model, version, name
        self.counters: dict[tuple[str, Attrs], float] = {}
        self.hists: dict[tuple[str, Attrs], _Hist] = {}
        # Raw request-path buffers, classified later.
        self.rows: dict[ModelKey, list[tuple[tuple[Any, ...], tuple[Any, ...]]]] = {}
        # (seconds, rows, error type) or, for a call whose inputs failed the schema,
        # (seconds, rows, error type, True)
        self.calls: dict[ModelKey, list[tuple[Any, ...]]] = {}
        self.preds: dict[ModelKey, list[float]] = {}
        # The three buffers of a model above, fetched together by record_simple.
        self.simple: dict[ModelKey, tuple[list[Any], list[float], list[Any]]] = {}
        # Batches of columns: (names, a rows × names numeric matrix or one array per name, rows);
        # the data is None for a batch already sketched, kept for its absent counts.
        self.blocks: dict[ModelKey, list[tuple[tuple[str, ...], Any, int]]] = {}
        # Numeric outputs of batch calls, per output name.
        self.outs: dict[ModelKey, dict[str, list[npt.NDArray[np.float64]]]] = {}
        self.values = 0  # numbers held in blocks and outs
        self.block_rows = 0
        self.sets = 0

    def buffers(self, model: ModelKey) -> tuple[list[Any], list[float], list[Any]]:
        """The row, prediction and call buffers of ``model`` (made when missing)."""
        bufs = (self.rows.setdefault(model, []), self.preds.setdefault(model, []), self.calls.setdefault(model, []))
        self.simple[model] = bufs
        return bufs

    def add_block(self, model: ModelKey, names: tuple[str, ...], data: Any, n: int) -> None:
        """Buffer a batch (``data`` ``None`` for one already sketched); the caller holds the lock."""
        buf = self.blocks.get(model)
        if buf is None:
            buf = self.blocks[model] = []
        buf.append((names, data, n))

    def add_outputs(self, model: ModelKey, values: dict[str, npt.NDArray[np.float64]]) -> int:
        """Buffer a call's numeric outputs; how many numbers they are. The caller holds the lock."""
        size = 0
        for name, v in values.items():
            if v.size:
                self.outs.setdefault(model, {}).setdefault(name, []).append(v)
                size += v.size
        return size

    def add_call(self, model: ModelKey, call: tuple[Any, ...]) -> int:
        """Buffer a call's duration and size; how many calls the model has buffered. The caller
        holds the lock."""
        buf = self.calls.get(model)
        if buf is None:
            buf = self.calls[model] = []
        buf.append(call)
        return len(buf)

    def take_buffers(self) -> _Buffers:
        """Hand over the request-path buffers and start empty ones."""
        taken = _Buffers(self.rows, self.calls, self.preds, self.blocks, self.outs)
        self.rows, self.calls, self.preds, self.simple, self.blocks, self.outs = {}, {}, {}, {}, {}, {}
        self.values = self.block_rows = 0
        return taken

    def pending_rows(self) -> int:
        return sum(len(r) for r in self.rows.values()) + self.block_rows


@dataclass
class _Buffers:
    """What the request path buffered: one-row calls (rows, calls, predictions) and batches
    (blocks of columns, numeric outputs), per model."""

    rows: dict[ModelKey, list[Any]]
    calls: dict[ModelKey, list[Any]]
    preds: dict[ModelKey, list[float]]
    blocks: dict[ModelKey, list[tuple[tuple[str, ...], Any, int]]] = field(default_factory=dict)
    outs: dict[ModelKey, dict[str, list[npt.NDArray[np.float64]]]] = field(default_factory=dict)


class FeatureStats:
    """Thread-safe accumulator of the ``ml.*`` statistics of every monitored model."""

    def __init__(self, max_categories: int = 100, max_attribute_sets: int = 2000) -> None:
        self.max_categories = max_categories
        self.max_attribute_sets = max_attribute_sets
        self._lock = threading.Lock()
        self._state = _State()
        # Stable across exports, so the same values map to the same series window after window.
        self._categories: dict[tuple[str, str, str], set[str]] = {}
        self._known: dict[ModelKey, set[str]] = {}
        self.on_pressure: Any = None  # called (no arguments) when buffers want compacting
        self._keys: dict[ModelKey, tuple[Any, ...]] = {}

    # -- request path ---------------------------------------------------------------------

    def record_row(self, model: ModelKey, row: Mapping[str, Any]) -> None:
        """One row: its values are appended as a tuple (about a fifth of a dict's memory),
        with the feature names shared between rows that have the same ones; classified later."""
        keys = tuple(row)
        with self._lock:
            last = self._keys.get(model)
            if last is not None and last == keys:
                keys = last  # one shared tuple of names per model
            else:
                self._keys[model] = keys
            buf = self._state.rows.get(model)
            if buf is None:
                buf = self._state.rows[model] = []
            buf.append((keys, tuple(row.values())))
            n = len(buf)
        wake, hard = _limits(len(keys))
        if n == wake and self.on_pressure is not None:
            self.on_pressure()
        elif n >= hard:
            self.compact()

    def record_simple(self, model: ModelKey, row: Mapping[str, Any], prediction: float, seconds: float) -> None:
        """The common call (one row in, one finite number out) under a single lock acquisition:
        :meth:`record_row`, an output value and :meth:`record_call` in one."""
        self.record_simple_items(model, tuple(row), tuple(row.values()), prediction, seconds)

    def record_simple_items(
        self, model: ModelKey, keys: tuple[Any, ...], values: tuple[Any, ...], prediction: float, seconds: float
    ) -> None:
        """:meth:`record_simple` of a row given as its distinct names and their values (what
        a row read from an array is, before anything builds its dict)."""
        with self._lock:
            st = self._state
            bufs = st.simple.get(model)
            if bufs is None:
                bufs = st.buffers(model)
            rows, preds, calls = bufs
            last = self._keys.get(model)
            if last == keys:
                keys = last  # one shared tuple of names per model
            else:
                self._keys[model] = keys
            rows.append((keys, values))
            n = len(rows)
            preds.append(prediction)
            calls.append((seconds, 1, None))
        wake, hard = _limits(len(keys))
        if n == wake and self.on_pressure is not None:
            self.on_pressure()
        elif n >= hard:
            self.compact()

    def record_rows(self, model: ModelKey, rows: Iterable[Mapping[str, Any]], redactor: Any = None) -> None:
        """Many rows (a list of dicts): each buffered as :meth:`record_row` would, so they are
        classified exactly as the same rows sent one call at a time; where the C extension is
        built, rows with the same names are buffered as batches instead (:meth:`_record_records`),
        classified the same way. With a ``redactor``, fields whose names it matches are left out
        (decided once per set of names)."""
        if _records_matrix is not None and type(rows) is list:
            done = self._record_records(model, rows, redactor)
            if done == len(rows):
                return
            rows = rows[done:]
        with self._lock:
            buf = self._state.rows.get(model)
            if buf is None:
                buf = self._state.rows[model] = []
            before = len(buf)
            shared = self._keys.get(model)
            last: tuple[Any, ...] | None = None
            keep: list[int] | None = None
            kept_keys: tuple[Any, ...] = ()
            for row in rows:
                keys = tuple(row)
                if keys == last:
                    keys = last
                else:
                    if keys == shared:
                        keys = shared  # one shared tuple of names per model
                    last = keys
                    keep = None
                    # a list: any_match reads the names twice (a map would be spent by the first)
                    if redactor is not None and redactor.any_match([str(k) for k in keys]):
                        keep = [i for i, k in enumerate(keys) if not redactor.matches(str(k))]
                        kept_keys = tuple(keys[i] for i in keep)
                if keep is None:
                    buf.append((keys, tuple(row.values())))
                else:
                    values = tuple(row.values())
                    buf.append((kept_keys, tuple(values[i] for i in keep)))
            if last is not None:
                self._keys[model] = last
            n = len(buf)
        wake, hard = _limits(len(last) if last is not None else 0)
        if before < wake <= n and self.on_pressure is not None:
            self.on_pressure()
        elif n >= hard:
            self.compact()

    def _record_records(self, model: ModelKey, rows: list[Any], redactor: Any) -> int:
        """A list of dicts with the same names, turned by the C extension into a rows × names
        matrix (its columns of numbers) and object columns (columns holding anything else,
        classified value by value off the request path as :meth:`_record_column` does for
        buffered rows): a few ns a value where buffering rows and converting them later costs
        about 40. A list of fewer than ``_HARD_VALUES`` values is buffered as a batch, at most
        ``_CONVERT_VALUES`` values at a time (a big temporary raised glibc's mmap threshold).
        A bigger one is sketched now, as a big matrix is, in equal parts of at most
        ``_HARD_VALUES`` values converted into one work buffer: buffered in small parts it was
        stacked again and sketched in many small sketches to merge (about a fifth of its cost).
        Returns how many leading rows it took; the caller buffers the rest row by row (a row
        with other names, or a value of another type, ends it)."""
        done, n = 0, len(rows)
        work: npt.NDArray[np.float64] | None = None
        plan: tuple[int, int] | None = None  # (names, rows per part) of a big list's parts
        while done < n:
            first = rows[done]
            if type(first) is not dict or not first:
                break
            k = len(first)
            left = n - done
            if plan is not None and plan[0] == k:
                # the next of a big list's equal parts (each under _HARD_VALUES: its last
                # part, had it been judged alone, would have been buffered in small parts,
                # stacked again and sketched at compaction)
                big, m = True, min(plan[1], left)
            else:
                big = left * k >= _HARD_VALUES
                if big:
                    parts = -(-left * k // _HARD_VALUES)
                    m = -(-left // parts)
                    plan = (k, m)
                else:
                    m = min(left, max(1, _CONVERT_VALUES // k))
            # written feature-major (names x rows), the layout the sketch reads: the batch's
            # rows x names matrix is its transpose, a view
            if big:
                if work is None or work.size < k * m:
                    work = np.empty(k * m, dtype=np.float64)
                feature_major = work[: k * m].reshape(k, m)
            else:
                feature_major = np.empty((k, m), dtype=np.float64)
            block = self._convert_records(rows, done, feature_major, redactor)
            if block is None:
                break
            names, data = block
            if big:
                # sketched before the next part is converted into the same buffer
                self._sketch_block(model, names, data, m)
            else:
                self._buffer_block(model, names, data, m)
            done += m
        return done

    @classmethod
    def _convert_records(
        cls, rows: list[Any], start: int, feature_major: npt.NDArray[np.float64], redactor: Any
    ) -> tuple[tuple[str, ...], Any] | None:
        """The names and data of the rows from ``start`` that fill ``feature_major`` (names x
        rows), converted by the C extension, or ``None`` where it does not take them (names or
        value types vary)."""
        converted = _records_matrix(rows, start, feature_major)
        if converted is None:
            return None
        return cls._records_block(converted, feature_major.T, redactor)

    @staticmethod
    def _records_block(
        converted: tuple[tuple[str, ...], list[tuple[int, list[Any]]]], matrix: npt.NDArray[np.float64], redactor: Any
    ) -> tuple[tuple[str, ...], Any]:
        """The names and data of a batch from what :func:`_records_matrix` answered: the
        matrix itself when every column is numeric, else one array per name (object arrays
        for the other columns), redacted names left out."""
        names, others = converted
        keep = None
        if redactor is not None and redactor.any_match(names):
            keep = [j for j, name in enumerate(names) if not redactor.matches(name)]
        if not others and keep is None:
            return names, matrix
        columns: list[npt.NDArray[Any]] = list(matrix.T)
        for j, values in others:
            col = np.empty(len(values), dtype=object)
            col[:] = values
            columns[j] = col
        if keep is not None:
            names, columns = tuple(names[j] for j in keep), [columns[j] for j in keep]
        return names, tuple(columns)

    def _buffer_block(self, model: ModelKey, names: tuple[str, ...], data: Any, n: int) -> None:
        """Buffer a batch this object owns (a rows × names numeric matrix, or one array per
        name), or sketch it now when it holds ``_HARD_VALUES`` values or more."""
        size = n * max(len(names), 1)
        if size >= _HARD_VALUES:
            self._sketch_block(model, names, data, n)
            return
        with self._lock:
            st = self._state
            st.add_block(model, names, data, n)
            st.block_rows += n
            st.values += size
            held = st.values
        self._pressure(held, size)

    def _sketch_block(self, model: ModelKey, names: tuple[str, ...], data: Any, n: int) -> None:
        """Sketch a batch's values now (on the caller's thread), outside the lock, and merge the
        result: nothing of ``data`` is kept. Its names and row count stay buffered (a block
        without data) until the next compaction, which counts the names it lacks as absent
        together with the rows buffered around it, as it does for a buffered batch: counted
        now, a name first seen later in the same list (or in rows buffered before it) was
        missed for its rows."""
        private = _State()
        self._process_batches(private, model, names, [(data, n)])
        with self._lock:
            self._merge(self._state, private)
            self._state.add_block(model, names, None, n)

    def record_columns(self, model: ModelKey, norm: Normalized, redactor: Any = None) -> None:
        """A batch: its columns are copied into the model's buffer (the caller may reuse its
        arrays) and sketched later with the other buffered batches, all numeric columns in one
        numpy pass; a batch of more than ``_HARD_VALUES`` numbers is sketched now."""
        if norm.is_row:
            self.record_row(model, norm.row or {})
            return
        if norm.records is not None:
            self.record_rows(model, norm.records, redactor)
            return
        n = norm.n_rows
        if n <= 0:
            return
        names, data = _block_of(norm)
        self._buffer_block(model, names, data, n)

    def record_batch(
        self,
        model: ModelKey,
        norm: Normalized,
        outs: Outputs | None,
        seconds: float,
        error_type: str | None,
        redactor: Any = None,
    ) -> bool:
        """:meth:`record_columns`, :meth:`record_outputs` and :meth:`record_call` of a batch
        call in one lock, for the common batch: a matrix or columns of no more than
        ``_HARD_VALUES`` values, or a list of dicts with the same names that the C extension
        converts in one piece (fewer than ``_CONVERT_VALUES`` values; what
        :meth:`_record_records` makes of it), and outputs that are numbers only (or none, for
        a failed call). ``False``, with nothing recorded, for any other call."""
        n = norm.n_rows
        if norm.is_row or n <= 0:
            return False
        if outs is not None and (outs.labels or outs.nulls):
            return False
        rows = norm.records
        if rows is not None:
            if _records_matrix is None or type(rows) is not list or type(rows[0]) is not dict:
                return False
            k = len(rows[0])
            if k == 0 or n * k >= _CONVERT_VALUES:
                return False
            block = self._convert_records(rows, 0, np.empty((k, n), dtype=np.float64), redactor)
            if block is None:  # names or value types vary: the row-by-row path
                return False
            names, data = block
        else:
            names, data = _block_of(norm)
        size = n * max(len(names), 1)
        if size >= _HARD_VALUES:
            return False
        with self._lock:
            st = self._state
            st.add_block(model, names, data, n)
            st.block_rows += n
            if outs is not None:
                size += st.add_outputs(model, outs.values)
            st.values += size
            held = st.values
            waiting = st.add_call(model, (seconds, n, error_type))
        self._pressure(held, size)
        self._calls_pressure(waiting)
        return True

    def _pressure(self, held: int, added: int) -> None:
        if held - added < _COMPACT_VALUES <= held and self.on_pressure is not None:
            self.on_pressure()
        elif held >= _HARD_VALUES:
            self.compact()

    def record_outputs(self, model: ModelKey, out: Outputs) -> None:
        """Outputs of a call: numeric values are buffered (sketched off the request path),
        labels and nulls counted."""
        m, v = model
        counted = [(name, Counter(labels)) for name, labels in out.labels.items()]
        with self._lock:
            st = self._state
            size = st.add_outputs(model, out.values)
            st.values += size
            held = st.values
            for name, counts in counted:
                for label, n in counts.items():
                    self._count(
                        st,
                        "ml.prediction.class",
                        (
                            ("ml.model.name", m),
                            ("ml.model.version", v),
                            ("ml.output.name", name),
                            ("ml.prediction.label", self._category(model, "\x00" + name, label)),
                        ),
                        n,
                    )
            for (name, kind), n in out.nulls.items():
                self._count(
                    st,
                    "ml.prediction.null",
                    (("ml.model.name", m), ("ml.model.version", v), ("ml.output.name", name), ("ml.null.kind", kind)),
                    n,
                )
        if size:
            self._pressure(held, size)

    def record_call(
        self, model: ModelKey, seconds: float, rows: int, error_type: str | None, *, invalid: bool = False
    ) -> None:
        """One call's duration and size (``invalid``: its inputs failed the schema; the call's
        duration is then recorded with ``ml.schema.valid=false``, what a data-quality SLO
        counts). The buffer is bounded like the row buffer: calls whose features are not
        buffered (statistics off or sampled out, batches) must not pile up for a whole export
        interval (500,000 calls in 5 s was +48 MB)."""
        with self._lock:
            n = self._state.add_call(
                model, (seconds, rows, error_type, True) if invalid else (seconds, rows, error_type)
            )
        self._calls_pressure(n)

    def _calls_pressure(self, n: int) -> None:
        if n == _COMPACT_AT and self.on_pressure is not None:
            self.on_pressure()
        elif n >= _HARD_LIMIT:
            self.compact()

    def record_violations(self, model: ModelKey, violations: Iterable[tuple[str, str, int]]) -> None:
        m, v = model
        with self._lock:
            for feature, rule, n in violations:
                self._count(
                    self._state,
                    "ml.schema.violations",
                    (
                        ("ml.model.name", m),
                        ("ml.model.version", v),
                        ("ml.feature.name", feature),
                        ("ml.schema.rule", rule),
                    ),
                    n,
                )

    def count_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            key = ("ml.telemetry.dropped", (("ml.telemetry.reason", reason),))
            c = self._state.counters
            c[key] = c.get(key, 0) + n

    def buffered_rows(self) -> int:
        """One-row calls waiting to be classified (a gauge of infersight's own backlog)."""
        return self._state.pending_rows()

    # -- helpers over one state (the live one under the lock, or a private one) ------------

    def _count(self, st: _State, metric: str, attrs: Attrs, n: float = 1) -> None:
        key = (metric, attrs)
        c = st.counters
        if key in c:
            c[key] += n
            return
        if st.sets >= self.max_attribute_sets:
            self._overflow(st, metric, n)
            return
        st.sets += 1
        c[key] = n

    @staticmethod
    def _drop(st: _State, reason: str) -> None:
        key = ("ml.telemetry.dropped", (("ml.telemetry.reason", reason),))
        st.counters[key] = st.counters.get(key, 0) + 1

    def _overflow(self, st: _State, metric: str, n: float) -> None:
        key = (metric, _OVERFLOW_ATTRS)
        st.counters[key] = st.counters.get(key, 0) + n
        self._drop(st, "cardinality_limit")

    def _numeric(self, st: _State, metric: str, model: ModelKey, name: str) -> _Numeric | None:
        key = (metric, model[0], model[1], name)
        num = st.numeric.get(key)
        if num is None:
            if st.sets >= self.max_attribute_sets:
                # Past the bound, values still count, in one overflow series per metric.
                self._drop(st, "cardinality_limit")
                return st.numeric.setdefault((metric, "", "", _OVERFLOW), _Numeric())
            st.sets += 1
            num = st.numeric[key] = _Numeric()
        return num

    def _append_sketch(self, st: _State, metric: str, model: ModelKey, name: str, sketch: ExpHistogram) -> None:
        if sketch.count == 0:
            return
        num = self._numeric(st, metric, model, name)
        if num is not None:
            num.sketches.append(sketch)
            if len(num.sketches) > _FOLD_AT:
                num.fold()

    def _hist(self, st: _State, metric: str, attrs: Attrs, bounds: tuple[float, ...]) -> _Hist | None:
        key = (metric, attrs)
        h = st.hists.get(key)
        if h is None:
            if st.sets >= self.max_attribute_sets:
                self._drop(st, "cardinality_limit")
                return st.hists.setdefault((metric, _OVERFLOW_ATTRS), _Hist(bounds))
            st.sets += 1
            h = st.hists[key] = _Hist(bounds)
        return h

    def _category(self, model: ModelKey, name: str, value: str) -> str:
        seen = self._categories.setdefault((model[0], model[1], name), set())
        if value in seen:
            return value
        if len(seen) < self.max_categories:
            seen.add(value)
            return value
        return OTHER

    def _record_column(self, st: _State, model: ModelKey, name: str, col: npt.NDArray[Any]) -> None:
        """A non-numeric column: booleans, strings (categories or text lengths), mixed objects
        (numeric columns are sketched together by :meth:`_record_numeric`)."""
        m, v = model
        if col.dtype.kind == "b":
            trues = int(col.sum())
            for label, n in (("true", trues), ("false", col.size - trues)):
                if n:
                    self._count(
                        st, "ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, label)), n
                    )
            return
        # The value rule of the one feature model (``infersight.stats.columns``), which the
        # reference profile applies to the same values.
        parts = split_values(col.tolist())
        for kind, n in parts.missing.items():
            if n:
                self._count(st, "ml.feature.missing", _attrs(m, v, name, kind), n)
        if parts.numbers.size:
            self._append_sketch(st, "ml.feature.value", model, name, ExpHistogram.from_values(parts.numbers))
        counts: dict[str, int] = {}
        for label in parts.labels:
            counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self._count(st, "ml.feature.category", _cat_attrs(m, v, name, self._category(model, name, label)), n)

    def _process_rows(
        self,
        st: _State,
        model: ModelKey,
        rows: list[tuple[tuple[Any, ...], tuple[Any, ...]]],
        blocks: list[tuple[tuple[str, ...], Any, int]],
    ) -> None:
        """Classify buffered one-row calls and batches of one model: rows with the same names
        become columns; numeric columns are sketched in one numpy pass per set of names,
        others go through the mixed path. A feature seen in other calls but missing here is
        counted absent, row by row."""
        m, v = model
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for keys, values in rows:
            g = groups.get(keys)
            if g is None:
                g = groups[keys] = []
            g.append(values)
        batches: dict[tuple[str, ...], list[tuple[Any, int]]] = {}
        for names, data, n in blocks:
            batches.setdefault(names, []).append((data, n))
        known = self._known.setdefault(model, set())
        for keys in groups:
            known.update(k if type(k) is str else str(k) for k in keys)
        for names in batches:
            known.update(names)
        for keys, table in groups.items():
            if keys and set(map(type, chain.from_iterable(table))) <= _NUMBERS:
                # The common group, numbers only: one conversion of the whole table, no
                # transposing in Python (about half the cost of the column-by-column path).
                str_names = [k if type(k) is str else str(k) for k in keys]
                step = max(1, _CONVERT_VALUES // len(keys))  # bounded temporaries (see _CONVERT_VALUES)
                for at in range(0, len(table), step):
                    try:
                        part = np.array(table[at : at + step], dtype=np.float64).T
                    except OverflowError:  # an int too large for a float: column by column
                        self._record_table(st, model, keys, table[at : at + step])
                    else:
                        self._record_numeric(st, model, str_names, part)
                continue
            self._record_table(st, model, keys, table)
        for names, parts in batches.items():
            held = [part for part in parts if part[0] is not None]  # not those sketched already
            if held:
                self._process_batches(st, model, names, held)
        for keys, rs in groups.items():
            missing = known.difference(k if type(k) is str else str(k) for k in keys)
            for name in missing:
                self._count(st, "ml.feature.missing", _attrs(m, v, name, "absent"), len(rs))
        for names, parts in batches.items():
            missing = known.difference(names)
            if missing:
                total = sum(n for _, n in parts)
                for name in missing:
                    self._count(st, "ml.feature.missing", _attrs(m, v, name, "absent"), total)

    def _record_table(self, st: _State, model: ModelKey, keys: tuple[Any, ...], table: list[tuple[Any, ...]]) -> None:
        """Rows with the same names, column by column: columns of numbers sketched together,
        the others classified value by value."""
        columns = list(zip(*table)) if table and keys else []
        float_names: list[str] = []
        float_cols: list[tuple[Any, ...]] = []
        for name, values in zip(keys, columns):
            name = name if type(name) is str else str(name)
            if set(map(type, values)) <= _NUMBERS:
                # Numbers only (ints as the mixed path would take them: float(x)); bools are
                # their own type and stay categories.
                float_names.append(name)
                float_cols.append(values)
            else:
                col = np.empty(len(values), dtype=object)
                col[:] = values
                self._record_column(st, model, name, col)
        if float_cols:
            # All float columns of the group in one sketching pass (one set of numpy calls,
            # not one per feature).
            try:
                numbers = np.array(float_cols, dtype=np.float64)
            except OverflowError:
                self._record_overflowing(st, model, float_names, float_cols)
            else:
                self._record_numeric(st, model, float_names, numbers)

    def _record_overflowing(
        self, st: _State, model: ModelKey, names: list[str], columns: list[tuple[Any, ...]]
    ) -> None:
        """Number columns of which one holds an int too large for a float (``10**400``):
        each converted alone, and a column that still does not convert is classified value by
        value, where such an int is missing ``inf`` (``infersight.stats.columns``)."""
        for name, values in zip(names, columns):
            try:
                numbers = np.array([values], dtype=np.float64)
            except OverflowError:
                col = np.empty(len(values), dtype=object)
                col[:] = values
                self._record_column(st, model, name, col)
            else:
                self._record_numeric(st, model, [name], numbers)

    def _process_batches(
        self, st: _State, model: ModelKey, names: tuple[str, ...], parts: list[tuple[Any, int]]
    ) -> None:
        """Buffered batches with the same names: numeric columns of all of them stacked
        feature-major and sketched together, other columns joined and classified."""
        k = len(names)
        total = sum(n for _, n in parts)
        if len(parts) == 1 and isinstance(parts[0][0], np.ndarray):  # one matrix (a big batch)
            self._record_numeric(st, model, list(names), parts[0][0].T.astype(np.float64, copy=False))
            return
        if all(isinstance(data, np.ndarray) for data, _ in parts):  # numeric matrices only
            # each batch's transpose written side by side, in one call
            feature_major = np.concatenate([data.T for data, _ in parts], axis=1, out=np.empty((k, total)))
            self._record_numeric(st, model, list(names), feature_major)
            return
        # Per name, its array in every batch (a numeric matrix gives all its columns at once).
        per_batch = [list(data.T) if isinstance(data, np.ndarray) else list(data) for data, _ in parts]
        numeric = [j for j in range(k) if all(cols[j].dtype.kind in "fiu" for cols in per_batch)]
        if numeric:
            feature_major = np.empty((len(numeric), total), dtype=np.float64)
            at = 0
            for (_, n), cols in zip(parts, per_batch):
                for i, j in enumerate(numeric):
                    feature_major[i, at : at + n] = cols[j]
                at += n
            self._record_numeric(st, model, [names[j] for j in numeric], feature_major)
        done = set(numeric)
        for j in range(k):
            if j in done:
                continue
            arrays = [cols[j] for cols in per_batch]
            if len({a.dtype for a in arrays}) > 1:
                arrays = [a.astype(object) for a in arrays]  # e.g. bool in one call, text in another
            self._record_column(st, model, names[j], np.concatenate(arrays) if len(arrays) > 1 else arrays[0])

    def _record_numeric(
        self, st: _State, model: ModelKey, names: Sequence[str], feature_major: npt.NDArray[np.float64]
    ) -> None:
        """Sketch numeric columns given one per row, and count their NaN and Inf values."""
        m, v = model
        n = feature_major.shape[1]
        sketches, nans = ExpHistogram.from_columns(feature_major)
        for name, sk, nan in zip(names, sketches, nans.tolist()):
            self._append_sketch(st, "ml.feature.value", model, name, sk)
            if nan:
                self._count(st, "ml.feature.missing", _attrs(m, v, name, "nan"), nan)
            if n - sk.count - nan:
                self._count(st, "ml.feature.missing", _attrs(m, v, name, "inf"), n - sk.count - nan)

    def _process_buffers(self, st: _State, bufs: _Buffers) -> None:
        for model in {**bufs.rows, **bufs.blocks}:
            self._process_rows(st, model, bufs.rows.get(model, []), bufs.blocks.get(model, []))
        for model, cs in bufs.calls.items():
            m, v = model
            base: Attrs = (("ml.model.name", m), ("ml.model.version", v))
            secs = np.fromiter((c[0] for c in cs), dtype=np.float64, count=len(cs))
            sizes = np.fromiter((c[1] for c in cs), dtype=np.float64, count=len(cs))
            h = self._hist(st, "ml.inference.batch_size", base, BATCH_BOUNDS)
            if h is not None:
                h.add_many(sizes)
            errors = [c[2] for c in cs]
            invalid = [len(c) > 3 for c in cs]
            if not any(errors) and not any(invalid):
                h = self._hist(st, "ml.inference.duration", base, DURATION_BOUNDS)
                if h is not None:
                    h.add_many(secs)
                continue
            # one histogram per (error type, schema-valid) pair the calls had
            group = [(e or "", bad) for e, bad in zip(errors, invalid)]
            codes = {g: i for i, g in enumerate(dict.fromkeys(group))}
            code = np.fromiter((codes[g] for g in group), dtype=np.int64, count=len(group))
            for (e, bad), i in codes.items():
                attrs = base if not e else base + (("error.type", e),)
                if bad:
                    attrs = attrs + (("ml.schema.valid", False),)
                h = self._hist(st, "ml.inference.duration", attrs, DURATION_BOUNDS)
                if h is not None:
                    h.add_many(secs[code == i])
        for model in {**bufs.preds, **bufs.outs}:
            outs = dict(bufs.outs.get(model, {}))
            ps = bufs.preds.get(model)
            if ps:
                outs["prediction"] = [np.asarray(ps, dtype=np.float64), *outs.get("prediction", [])]
            for name, arrays in outs.items():
                values = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
                self._append_sketch(st, "ml.prediction.value", model, name, ExpHistogram.from_values(values))

    # -- export path ----------------------------------------------------------------------

    def compact(self) -> None:
        """Classify and sketch the request-path buffers now (exporter thread), keeping memory
        bounded between exports. The lock is held only to swap buffers and merge results."""
        with self._lock:
            bufs = self._state.take_buffers()
        private = _State()
        self._process_buffers(private, bufs)
        with self._lock:
            self._merge(self._state, private)

    @staticmethod
    def _merge(dst: _State, src: _State) -> None:
        for key, num in src.numeric.items():
            d = dst.numeric.get(key)
            if d is None:
                dst.numeric[key] = num
                dst.sets += 1
            else:
                d.sketches.extend(num.sketches)
                d.fold()
        for ckey, n in src.counters.items():
            if ckey not in dst.counters:
                dst.sets += 1
            dst.counters[ckey] = dst.counters.get(ckey, 0) + n
        for hkey, h in src.hists.items():
            d2 = dst.hists.get(hkey)
            if d2 is None:
                dst.hists[hkey] = h
                dst.sets += 1
            else:
                d2.merge(h)

    def reset(self) -> None:
        """Forget everything pending (a forked child must not re-export its parent's data)."""
        self._lock = threading.Lock()
        self._state = _State()

    def drain(self, start_ns: int, end_ns: int) -> list[Metric]:
        """Everything recorded since the last drain, as OTel metrics with delta temporality."""
        with self._lock:
            state, self._state = self._state, _State()
        self._process_buffers(state, state.take_buffers())
        metrics: list[Metric] = []
        delta = AggregationTemporality.DELTA
        by_metric: dict[str, list[Any]] = {}
        for (metric, m, v, name), num in state.numeric.items():
            sk = num.result()
            if sk is None or sk.count == 0:
                continue
            attr_name = "ml.feature.name" if metric == "ml.feature.value" else "ml.output.name"
            point_attrs = (
                dict(OVERFLOW_ATTRIBUTES)
                if name == _OVERFLOW
                else {"ml.model.name": m, "ml.model.version": v, attr_name: name}
            )
            by_metric.setdefault(metric, []).append(_exp_point(point_attrs, sk, start_ns, end_ns))
        for metric in ("ml.feature.value", "ml.prediction.value"):
            if metric in by_metric:
                metrics.append(
                    Metric(metric, _DESCRIPTIONS[metric], "1", ExponentialHistogram(by_metric[metric], delta))
                )
        sums: dict[str, list[NumberDataPoint]] = {}
        for (metric, attrs), n in state.counters.items():
            sums.setdefault(metric, []).append(
                NumberDataPoint(dict(attrs), start_ns, end_ns, int(n) if float(n).is_integer() else n)
            )
        for metric, sum_points in sums.items():
            metrics.append(Metric(metric, _DESCRIPTIONS.get(metric, ""), "1", Sum(sum_points, delta, True)))
        hists: dict[str, list[HistogramDataPoint]] = {}
        for (metric, hattrs), h in state.hists.items():
            if h.counts is None:
                continue
            hists.setdefault(metric, []).append(
                HistogramDataPoint(
                    dict(hattrs), start_ns, end_ns, h.n, h.total, h.counts.tolist(), list(h.bounds), h.lo, h.hi
                )
            )
        for metric, hist_points in hists.items():
            unit = "s" if metric == "ml.inference.duration" else "1"
            metrics.append(Metric(metric, _DESCRIPTIONS[metric], unit, Histogram(hist_points, delta)))
        _label_slices(metrics)
        return metrics


def _label_slices(metrics: list[Metric]) -> None:
    """A slice's series were kept under a version joined with its slice key
    (:func:`infersight.slices.sliced_version`): give them their version and ``ml.slice`` back."""
    for metric in metrics:
        for p in metric.data.data_points:
            a = p.attributes
            v = a.get("ml.model.version") if a else None
            if type(v) is str and _SLICE_SEP in v:
                a["ml.model.version"], a[SLICE_ATTRIBUTE] = split_version(v)  # type: ignore[index]


def _attrs(m: str, v: str, name: str, kind: str) -> tuple[tuple[str, Any], ...]:
    return (("ml.model.name", m), ("ml.model.version", v), ("ml.feature.name", name), ("ml.missing.kind", kind))


def _cat_attrs(m: str, v: str, name: str, value: str) -> tuple[tuple[str, Any], ...]:
    return (("ml.model.name", m), ("ml.model.version", v), ("ml.feature.name", name), ("ml.category.value", value))


def _exp_point(attrs: dict[str, Any], sk: ExpHistogram, start_ns: int, end_ns: int) -> ExponentialHistogramDataPoint:
    return ExponentialHistogramDataPoint(
        attributes=attrs,
        start_time_unix_nano=start_ns,
        time_unix_nano=end_ns,
        count=sk.count,
        sum=sk.sum,
        scale=sk.scale,
        zero_count=sk.zero_count,
        positive=OtelBuckets(sk.positive.offset, sk.positive.counts.tolist()),
        negative=OtelBuckets(sk.negative.offset, sk.negative.counts.tolist()),
        flags=0,
        min=sk.min,
        max=sk.max,
    )


_DESCRIPTIONS = {
    "ml.feature.value": "Distribution of each numeric input feature (text: length)",
    "ml.feature.category": "Count of each categorical feature value (bounded; rest __other__)",
    "ml.feature.missing": "Missing feature values by kind: absent, null, nan, inf",
    "ml.prediction.value": "Distribution of numeric outputs and scores",
    "ml.prediction.class": "Count of each predicted class (bounded)",
    "ml.prediction.null": "Outputs that were None, NaN or the configured default answer",
    "ml.schema.violations": "Rows violating a schema rule, by feature and rule",
    "ml.telemetry.dropped": "Telemetry the SDK dropped, by reason",
    "ml.inference.duration": "Duration of each predict call",
    "ml.inference.batch_size": "Rows per predict call",
}
