"""Feature schemas: what a model expects, checked on every prediction call.

A :class:`Schema` is a set of per-feature rules (:class:`FeatureSchema`) plus optional
relations between two features. It is inferred from training data (``Reference.from_data``
builds one), written by hand, or read from the predict function's own type hints and pydantic
models (:meth:`Schema.from_function`). It is plain, editable data and saves as versioned JSON.

:meth:`Schema.validate` runs in the request path, so it is vectorised with numpy for batches and
takes a scalar fast path for one row, and it never raises: weird input (objects, mixed types)
is itself a ``type`` violation. Each value breaks at most one rule, checked in this order:
``type`` → ``nullable`` → ``finite`` → ``range`` / ``allowed`` / ``regex`` / ``length``.
Missing features break ``required``; :class:`Relation` rows break ``relation``.

Versioning: a schema carries ``model``, ``model_version`` and ``schema_version``. When the call
names a different model version, the report gets a ``version_mismatch`` violation and every
other violation is flagged ``version_mismatch=True``, so an alert can say "probably the wrong
model or schema" instead of "the data changed".

Example:
    >>> import numpy as np
    >>> s = Schema({"age": FeatureSchema("age", "numeric", min=0, max=120)})
    >>> r = s.validate({"age": np.array([30.0, 250.0])}, 2)
    >>> [(v.feature, v.rule, v.count, v.example) for v in r.violations]
    [('age', 'range', 1, 250.0)]
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import numbers
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from infersight.stats.columns import ABSENT, clean_column, infer_kind, null_mask

__all__ = [
    "RULES",
    "FeatureSchema",
    "Relation",
    "Schema",
    "SchemaViolation",
    "ValidationReport",
    "Violation",
]

SCHEMA_FORMAT_VERSION = 1

RULES = (
    "required",
    "type",
    "nullable",
    "finite",
    "range",
    "allowed",
    "regex",
    "length",
    "relation",
    "version_mismatch",
)

# Inferred categorical features with at most this many distinct values get an allowed set.
MAX_ALLOWED = 100
# Inferred numeric ranges are widened by this share of the observed span on each side.
RANGE_TOLERANCE = 0.1

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}

# Obvious string formats worth a regex rule when every training value matches.
_PATTERNS: list[tuple[str, str]] = [
    ("uuid", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ("email", r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"),
    ("iso_date", r"\d{4}-\d{2}-\d{2}"),
    ("digits", r"\d+"),
    ("upper_code", r"[A-Z]{2,3}"),
]


@dataclass
class FeatureSchema:
    """Rules for one feature. Edit freely; ``None`` means "no rule".

    ``kind`` is one of numeric, categorical, boolean, text, array, timestamp. ``allowed`` works
    for numbers and strings; ``min_length``/``max_length`` apply to text and arrays.

    >>> FeatureSchema("plan", "categorical", allowed=["free", "pro"]).check_value("gold")
    'allowed'
    """

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    integer: bool = False
    allow_inf: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _allowed_set: frozenset[Any] | None = field(default=None, init=False, repr=False, compare=False)
    _cache_key: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def _prepare(self) -> None:
        # Cached per edit: users change rules on the live object (schema.features["x"].max = 9).
        key = (self.regex, None if self.allowed is None else tuple(self.allowed))
        if key != self._cache_key:
            self._compiled = re.compile(self.regex) if self.regex else None
            self._allowed_set = None if self.allowed is None else frozenset(self.allowed)
            self._cache_key = key

    # -- one value (the one-row fast path; must agree with the vectorised path) ----------

    def check_value(self, v: Any) -> str | None:
        """The rule one value breaks, or ``None``."""
        self._prepare()
        if _is_null(v):
            return None if self.nullable else "nullable"
        kind = self.kind
        if kind == "numeric":
            if not isinstance(v, numbers.Real):
                return "type"
            x = float(v)
            if math.isinf(x):
                return None if self.allow_inf else "finite"
            if self.integer and x != math.floor(x):
                return "type"
            if (self.min is not None and x < self.min) or (self.max is not None and x > self.max):
                return "range"
            if self._allowed_set is not None and x not in self._allowed_set:
                return "allowed"
            return None
        if kind == "boolean":
            if isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Real) and float(v) in (0.0, 1.0)):
                return None
            return "type"
        if kind in ("categorical", "text"):
            if isinstance(v, np.str_):
                v = str(v)
            if not isinstance(v, str):
                return "type"
            return self._check_string(v)
        if kind == "array":
            if not isinstance(v, (list, tuple, np.ndarray)):
                return "type"
            return self._check_length(len(v))
        return None  # timestamp: presence only

    def _check_string(self, s: str) -> str | None:
        if self._allowed_set is not None and s not in self._allowed_set:
            return "allowed"
        if self._compiled is not None and self._compiled.fullmatch(s) is None:
            return "regex"
        return self._check_length(len(s))

    def _check_length(self, n: int) -> str | None:
        if (self.min_length is not None and n < self.min_length) or (
            self.max_length is not None and n > self.max_length
        ):
            return "length"
        return None

    # -- a column ---------------------------------------------------------------------------

    def check_column(self, col: npt.NDArray[Any]) -> dict[str, npt.NDArray[np.bool_]]:
        """Rows breaking each rule (each row in at most one mask), vectorised."""
        self._prepare()
        if self.kind == "numeric":
            return self._check_numeric(col)
        if col.dtype.kind in "US":
            col = col.astype(object)
        if col.dtype.kind != "O":
            if self.kind == "boolean":
                if col.dtype.kind == "b":
                    return {}
                x = col.astype(np.float64)
                nulls = np.isnan(x)
                return _masks(
                    nullable=None if self.nullable else nulls,
                    type=~nulls & (x != 0) & (x != 1),
                )
            if self.kind == "array" and col.ndim == 2:
                bad = self._check_length(col.shape[1])
                return {bad: np.ones(col.shape[0], bool)} if bad else {}
            if self.kind == "timestamp":
                return {}
            # A numeric or bool array where strings are expected.
            nulls = np.isnan(col) if col.dtype.kind == "f" else np.zeros(col.shape[0], bool)
            return _masks(nullable=None if self.nullable else nulls, type=~nulls)
        # object column: classify each value once in C (frompyfunc), then check uniques only.
        codes = _classify(self.kind)(col).astype(np.int8)
        out = _masks(nullable=None if self.nullable else codes == 1, type=codes == 2)
        ok = codes == 0
        if self.kind in ("categorical", "text") and ok.any():
            if (
                self._allowed_set is None
                and self._compiled is None
                and self.min_length is None
                and self.max_length is None
            ):
                return out
            idx = np.flatnonzero(ok)
            vals = col[idx].astype(str)
            uniq, inverse = np.unique(vals, return_inverse=True)
            rules = [self._check_string(str(u)) for u in uniq]
            for rule in ("allowed", "regex", "length"):
                bad_u = np.array([r == rule for r in rules], dtype=bool)
                if bad_u.any():
                    m = np.zeros(col.shape[0], bool)
                    m[idx[bad_u[inverse.ravel()]]] = True
                    out[rule] = m
        elif self.kind == "array" and ok.any() and (self.min_length is not None or self.max_length is not None):
            lengths = np.zeros(col.shape[0], np.int64)
            lengths[ok] = np.frompyfunc(len, 1, 1)(col[ok]).astype(np.int64)
            bad = ok.copy()
            bad &= ((lengths < self.min_length) if self.min_length is not None else False) | (
                (lengths > self.max_length) if self.max_length is not None else False
            )
            if bad.any():
                out["length"] = bad
        return out

    def _check_numeric(self, col: npt.NDArray[Any]) -> dict[str, npt.NDArray[np.bool_]]:
        k = col.dtype.kind
        type_bad: npt.NDArray[np.bool_] | None = None
        if k == "f":
            x = col.astype(np.float64, copy=False)
        elif k in "iub":
            x = col.astype(np.float64)
        elif k == "O":
            conv = np.frompyfunc(_num_or_none, 1, 1)(col)
            type_bad = np.asarray(conv == None, dtype=bool)  # noqa: E711 - elementwise on an object array
            x = np.where(type_bad, 0.0, conv).astype(np.float64)
        else:  # strings, dates, anything else: all wrong
            return {"type": np.ones(col.shape[0], bool)}
        nan = np.isnan(x)
        inf = np.isinf(x)
        out = _masks(type=type_bad, nullable=None if self.nullable else nan, finite=None if self.allow_inf else inf)
        finite = ~(nan | inf)
        if type_bad is not None:
            finite &= ~type_bad
        if self.integer:
            frac = finite & (x != np.floor(np.where(finite, x, 0.0)))
            if frac.any():
                out["type"] = out["type"] | frac if "type" in out else frac
                finite &= ~frac
        if self.min is not None or self.max is not None:
            with np.errstate(invalid="ignore"):
                bad = np.zeros(x.shape[0], bool)
                if self.min is not None:
                    bad |= x < self.min
                if self.max is not None:
                    bad |= x > self.max
            bad &= finite
            if bad.any():
                out["range"] = bad
            finite &= ~bad
        if self._allowed_set is not None:
            bad = finite & ~np.isin(x, np.array(sorted(float(a) for a in self._allowed_set)))
            if bad.any():
                out["allowed"] = bad
        return out

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        return {k: v for k, v in d.items() if v is not None and not (k in _DEFAULT_FALSE and v is False)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSchema:
        known = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown schema rule(s) {sorted(unknown)} for feature {d.get('name')!r}; known: {sorted(known)}"
            )
        return cls(**dict(d))


_DEFAULT_FALSE = {"nullable", "integer", "allow_inf"}


def _masks(**masks: npt.NDArray[np.bool_] | None) -> dict[str, npt.NDArray[np.bool_]]:
    return {k: m for k, m in masks.items() if m is not None and m.any()}


def _num_or_none(v: Any) -> Any:
    """float for numbers, NaN for missing, None for anything else (a ``type`` violation)."""
    if v is None or v is ABSENT:
        return math.nan
    if isinstance(v, numbers.Real):
        return float(v)
    return None


def _code_str(v: Any) -> int:
    if isinstance(v, str):
        return 0
    return 1 if _is_null(v) else 2


def _code_bool(v: Any) -> int:
    if isinstance(v, (bool, np.bool_)):
        return 0
    if _is_null(v):
        return 1
    if isinstance(v, numbers.Real) and float(v) in (0.0, 1.0):
        return 0
    return 2


def _code_array(v: Any) -> int:
    if isinstance(v, (list, tuple, np.ndarray)):
        return 0
    return 1 if _is_null(v) else 2


def _code_any(v: Any) -> int:
    return 1 if _is_null(v) else 0


def _is_null(v: Any) -> bool:
    return v is None or v is ABSENT or (isinstance(v, float) and math.isnan(v))


_CLASSIFIERS = {
    "categorical": np.frompyfunc(_code_str, 1, 1),
    "text": np.frompyfunc(_code_str, 1, 1),
    "boolean": np.frompyfunc(_code_bool, 1, 1),
    "array": np.frompyfunc(_code_array, 1, 1),
    "timestamp": np.frompyfunc(_code_any, 1, 1),
}


def _classify(kind: str) -> Any:
    return _CLASSIFIERS.get(kind, _CLASSIFIERS["timestamp"])


@dataclass
class Relation:
    """``left op right`` must hold on every row where both are present (op: < <= > >= == !=).

    >>> Relation("min_price", "<=", "max_price").describe()
    'min_price <= max_price'
    """

    left: str
    op: str
    right: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"relation operator {self.op!r} is not supported; use one of {sorted(_OPS)}")

    def describe(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def broken(self, columns: Mapping[str, Any]) -> npt.NDArray[np.bool_] | None:
        a, b = columns.get(self.left), columns.get(self.right)
        if a is None or b is None:
            return None
        try:
            x = np.asarray(a, dtype=np.float64)
            y = np.asarray(b, dtype=np.float64)
            if x.ndim != 1 or x.shape != y.shape:
                return None  # arrays or ragged values: the features' own rules report them
            with np.errstate(invalid="ignore"):
                return ~np.asarray(_OPS[self.op](x, y), dtype=bool) & ~np.isnan(x) & ~np.isnan(y)
        except (TypeError, ValueError):
            return None  # wrong types are reported by the features' own type rules


@dataclass
class Violation:
    """Rows of one batch breaking one rule of one feature.

    ``example`` is the first offending value and ``first_row`` its row index. With
    ``version_mismatch`` set the schema was built for another model version than the call's,
    so the violation may be the mismatch rather than the data.
    """

    feature: str
    rule: str
    count: int
    example: Any
    message: str
    first_row: int = 0
    version_mismatch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "example": _json_safe(self.example)}


@dataclass
class ValidationReport:
    """Result of :meth:`Schema.validate`. Falsy ``ok`` means at least one violation."""

    n_rows: int
    violations: list[Violation] = field(default_factory=list)
    version_mismatch: bool = False

    @property
    def ok(self) -> bool:
        return not self.violations

    def counts(self) -> dict[tuple[str, str], int]:
        """Rows per (feature, rule): what ``ml.schema.violations`` counts."""
        return {(v.feature, v.rule): v.count for v in self.violations}

    def message(self) -> str:
        if not self.violations:
            return "no schema violations"
        first = self.violations[0]
        extra = len(self.violations) - 1
        return first.message + (f" (and {extra} more violation(s))" if extra else "")

    def raise_for_violations(self) -> None:
        """Raise :class:`SchemaViolation` when there is any violation."""
        if self.violations:
            raise SchemaViolation(self)


class SchemaViolation(ValueError):
    """Raised for ``on_violation="raise"``; ``.report`` holds every violation of the call.

    >>> r = ValidationReport(1, [Violation("age", "range", 1, 250.0, "feature 'age' ...")])
    >>> str(SchemaViolation(r))
    "feature 'age' ..."
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.message())


def _json_safe(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, np.generic):
        return _json_safe(v.item())
    if isinstance(v, (list, tuple, np.ndarray)):
        return f"<{type(v).__name__} of length {len(v)}>"
    return repr(v)[:200]


def _example(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


_FIX = {
    "required": "send the feature, or mark it optional with schema.features[{f!r}].required = False",
    "type": "send a {kind} value (check the serialisation upstream)",
    "nullable": "fill the value upstream, or allow missing values with schema.features[{f!r}].nullable = True",
    "finite": "check the computation upstream, or set schema.features[{f!r}].allow_inf = True",
    "range": "check the units upstream, or widen schema.features[{f!r}].min/.max",
    "allowed": "check for a new category, or add it to schema.features[{f!r}].allowed",
    "regex": "check the format upstream, or edit schema.features[{f!r}].regex",
    "length": "check the input upstream, or edit schema.features[{f!r}].min_length/.max_length",
}


def _describe(fs: FeatureSchema, rule: str, v: Any) -> str:
    if rule == "required":
        return "is missing from the input"
    if rule == "type":
        extra = " (not a whole number)" if fs.integer and isinstance(v, numbers.Real) else ""
        return f"value {_short(v)} is a {type(v).__name__}{extra}, expected {fs.kind}"
    if rule == "nullable":
        return f"value {_short(v)} is missing (None/NaN) and the feature is not nullable"
    if rule == "finite":
        return f"value {_short(v)} is infinite"
    if rule == "range":
        return f"value {_short(v)} is outside [{fs.min}, {fs.max}]"
    if rule == "allowed":
        shown = ", ".join(map(repr, (fs.allowed or [])[:5])) + (", ..." if len(fs.allowed or []) > 5 else "")
        return f"value {_short(v)} is not one of the {len(fs.allowed or [])} allowed values ({shown})"
    if rule == "regex":
        return f"value {_short(v)} does not match /{fs.regex}/"
    if rule == "length":
        n = len(v) if hasattr(v, "__len__") else "?"
        return f"value {_short(v)} has length {n}, expected {fs.min_length}..{fs.max_length}"
    return f"value {_short(v)}"


def _short(v: Any) -> str:
    r = repr(_example(v))
    return r if len(r) <= 60 else r[:57] + "..."


@dataclass
class Schema:
    """Per-feature rules, relations and version identity; see the module docstring.

    >>> s = Schema.from_dict({"features": {"x": {"name": "x", "kind": "numeric"}}})
    >>> s.validate({}, 3).violations[0].rule
    'required'
    """

    features: dict[str, FeatureSchema] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    model: str | None = None
    model_version: str | None = None
    schema_version: int = 1
    allow_extra: bool = True

    # -- validation ---------------------------------------------------------------------------

    def validate(
        self, columns: Mapping[str, Any], n_rows: int | None = None, *, model_version: str | None = None
    ) -> ValidationReport:
        """Check one call's columns; never raises (a broken check becomes a ``type`` violation).

        ``model_version`` is the version the call was made with; when it differs from the
        schema's, see the module docstring.
        """
        if n_rows is None:
            n_rows = len(next(iter(columns.values()))) if columns else 0
        report = ValidationReport(n_rows)
        mismatch = (
            model_version is not None
            and self.model_version is not None
            and str(model_version) != str(self.model_version)
        )
        if mismatch:
            report.version_mismatch = True
            report.violations.append(
                Violation(
                    "*",
                    "version_mismatch",
                    n_rows,
                    model_version,
                    f"schema rule 'version_mismatch': the call says model version {model_version!r} but the schema "
                    f"was built for {self.model_version!r} (schema_version {self.schema_version}); other violations "
                    "may come from this mismatch, not the data. Fix: load the reference for this model version, "
                    "or set schema.model_version",
                    version_mismatch=True,
                )
            )
        for name, fs in self.features.items():
            col = columns.get(name)
            try:
                if col is None:
                    if fs.required and n_rows:
                        report.violations.append(self._violation(fs, "required", n_rows, None, 0, n_rows, mismatch))
                    continue
                if n_rows == 1:
                    self._check_one(fs, col, report, mismatch)
                else:
                    self._check_many(fs, col, n_rows, report, mismatch)
            except Exception as exc:  # never raise into the request path
                report.violations.append(self._violation(fs, "type", n_rows, repr(exc)[:80], 0, n_rows, mismatch))
        for rel in self.relations:
            try:
                broken = rel.broken(columns)
            except Exception:
                broken = None
            if broken is not None and broken.any():
                idx = int(np.argmax(broken))
                a = _example(np.asarray(columns[rel.left]).ravel()[idx])
                b = _example(np.asarray(columns[rel.right]).ravel()[idx])
                count = int(broken.sum())
                report.violations.append(
                    Violation(
                        rel.left,
                        "relation",
                        count,
                        a,
                        f"feature {rel.left!r} broke rule 'relation': {rel.describe()} fails for value {a!r} vs "
                        f"{rel.right}={b!r} ({count} of {n_rows} rows). Fix: check both features upstream, or "
                        "remove the relation from schema.relations",
                        idx,
                        mismatch,
                    )
                )
        return report

    def validate_row(self, row: Mapping[str, Any], *, model_version: str | None = None) -> ValidationReport:
        """Check one row given as a plain dict (the SDK's single-row shape)."""
        return self.validate({k: [v] for k, v in row.items()}, 1, model_version=model_version)

    def _check_one(self, fs: FeatureSchema, col: Any, report: ValidationReport, mismatch: bool) -> None:
        v = col[0] if len(col) else None
        if isinstance(col, np.ndarray) and col.ndim == 2 and fs.kind == "array":
            v = col[0]
        rule = fs.check_value(v.item() if isinstance(v, np.generic) and not isinstance(v, np.str_) else v)
        if rule is not None:
            report.violations.append(self._violation(fs, rule, 1, v, 0, 1, mismatch))

    def _check_many(self, fs: FeatureSchema, col: Any, n_rows: int, report: ValidationReport, mismatch: bool) -> None:
        arr = col if isinstance(col, np.ndarray) else _as_object_array(col)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        absent = np.equal(arr, ABSENT) if arr.dtype.kind == "O" and arr.ndim == 1 else None
        if absent is not None and absent.any():
            # A key missing from a record is about presence: it breaks ``required`` or nothing,
            # never ``nullable`` or ``type`` (the one feature model's ``absent``).
            if fs.required:
                idx = int(np.argmax(absent))
                count = int(absent.sum())
                report.violations.append(self._violation(fs, "required", count, None, idx, n_rows, mismatch))
        else:
            absent = None
        for rule, mask in fs.check_column(arr).items():
            if absent is not None:
                mask = mask & ~absent
                if not mask.any():
                    continue
            idx = int(np.argmax(mask))
            report.violations.append(self._violation(fs, rule, int(mask.sum()), arr[idx], idx, n_rows, mismatch))

    @staticmethod
    def _violation(
        fs: FeatureSchema, rule: str, count: int, value: Any, row: int, n_rows: int, mismatch: bool
    ) -> Violation:
        fix = _FIX.get(rule, "check the input").format(f=fs.name, kind=fs.kind)
        msg = (
            f"feature {fs.name!r} broke rule {rule!r}: {_describe(fs, rule, value)} "
            f"({count} of {n_rows} rows). Fix: {fix}"
        )
        if mismatch:
            msg += " [schema built for another model version]"
        return Violation(fs.name, rule, count, _example(value), msg, row, mismatch)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def infer(
        cls,
        columns: Mapping[str, npt.NDArray[Any]],
        *,
        kinds: Mapping[str, str] | None = None,
        model: str | None = None,
        model_version: str | None = None,
        tolerance: float = RANGE_TOLERANCE,
        relations: bool = False,
        numeric_facts: Mapping[str, NumericFacts] | None = None,
    ) -> Schema:
        """Infer rules from training columns.

        Ranges are the observed min/max widened by ``tolerance`` × span (never below 0 for a
        feature that was never negative); categorical features with at most 100 values get an
        allowed set; strings that all match an obvious format (uuid, email, date, digits, codes)
        get a regex; arrays get their observed lengths. ``relations=True`` adds ``a <= b`` for
        every numeric pair that held on all rows (opt-in: it finds coincidences too).
        ``numeric_facts``: what a reference profile already knows of a numeric column, so
        the column is not scanned again (same rules).

        >>> Schema.infer({"x": np.array([1.0, 3.0])}).features["x"].max
        3.2
        """
        out = cls(model=model, model_version=model_version)
        for name, raw in columns.items():
            facts = (numeric_facts or {}).get(name)
            if facts is not None:
                out.features[name] = _numeric_rules(FeatureSchema(name, "numeric"), facts, tolerance)
                continue
            kind = (kinds or {}).get(name) or infer_kind(raw)
            col = clean_column(raw, kind)
            absent = raw.dtype.kind == "O" and bool(np.equal(raw, ABSENT).any())
            fs = FeatureSchema(name, kind, required=not absent)
            missing = null_mask(col) if col.size else np.zeros(0, bool)
            fs.nullable = bool(missing.any())
            present = col[~missing]
            if kind == "numeric":
                x = present.astype(np.float64)
                allow_inf = bool(np.isinf(x).any())
                x = x[np.isfinite(x)]
                found = NumericFacts(fs.required, fs.nullable, allow_inf, None, None, False)
                if x.size:
                    found = found._replace(
                        min=float(x.min()), max=float(x.max()), integer=bool(np.all(x == np.floor(x)))
                    )
                _numeric_rules(fs, found, tolerance)
            elif kind in ("categorical", "text") and present.size:
                strs = present.astype(str)
                uniq = np.unique(strs)
                if kind == "categorical" and uniq.size <= MAX_ALLOWED:
                    fs.allowed = uniq.tolist()
                else:
                    fs.regex = _obvious_pattern(uniq[:5000].tolist())
                    if kind == "text":
                        lengths = np.char.str_len(uniq.astype(str))
                        fs.max_length = int(math.ceil(lengths.max() * (1 + tolerance * 10)))
            elif kind == "array" and present.size:
                lengths = np.frompyfunc(len, 1, 1)(present).astype(np.int64)
                fs.min_length, fs.max_length = int(lengths.min()), int(lengths.max())
            out.features[name] = fs
        if relations:
            out.relations = _find_relations(columns, out)
        return out

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, model: str | None = None, model_version: str | None = None
    ) -> Schema:
        """Rules from the predict function's contract, without training data.

        Parameters (or the fields of a pydantic model / dataclass parameter, also inside
        ``list[...]``) become features: ``float``/``int`` → numeric (``int`` → integer),
        ``bool`` → boolean, ``str`` → text, ``Literal[...]``/``Enum`` → allowed set,
        ``Optional`` → nullable, a default → not required, ``list``/``ndarray`` → array, and
        pydantic / annotated-types constraints (``ge``, ``gt``, ``le``, ``lt``, ``min_length``,
        ``max_length``, ``pattern``) → ranges, lengths and regexes.

        >>> def predict(age: float, plan: typing.Literal["free", "pro"] = "free") -> float: ...
        >>> s = Schema.from_function(predict)
        >>> s.features["plan"].allowed, s.features["plan"].required
        (['free', 'pro'], False)
        """
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise TypeError(
                f"cannot read the type hints of {getattr(fn, '__qualname__', fn)!r}: {exc}; "
                "make the annotations importable or pass schema= explicitly"
            ) from exc
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        out = cls(model=model, model_version=model_version)
        if len(params) == 1:
            hint = _unwrap_list(_strip_optional(hints.get(params[0].name, Any))[0])
            fields = _record_fields(hint)
            if fields is not None:
                for name, (ann, has_default, meta) in fields.items():
                    fs = _feature_from_hint(name, ann, meta)
                    if fs is not None:
                        fs.required = fs.required and not has_default
                        out.features[name] = fs
                return out
        for p in params:
            fs = _feature_from_hint(p.name, hints.get(p.name, Any), ())
            if fs is not None:
                fs.required = fs.required and p.default is inspect.Parameter.empty
                out.features[p.name] = fs
        if not out.features:
            raise TypeError(
                f"{getattr(fn, '__qualname__', fn)!r} has no typed inputs to build a schema from; annotate its "
                "parameters (e.g. age: float) or a pydantic input model, or pass schema= explicitly"
            )
        return out

    # -- editing and serialisation --------------------------------------------------------------

    def select(self, names: Iterable[str]) -> Schema:
        """A copy with only ``names`` (and the relations among them)."""
        keep = set(names)
        return Schema(
            {k: dataclasses.replace(v) for k, v in self.features.items() if k in keep},
            [r for r in self.relations if r.left in keep and r.right in keep],
            self.model,
            self.model_version,
            self.schema_version,
            self.allow_extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_version": self.model_version,
            "schema_version": self.schema_version,
            "allow_extra": self.allow_extra,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "relations": [dataclasses.asdict(r) for r in self.relations],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        try:
            feats = {str(k): FeatureSchema.from_dict({"name": k, **v}) for k, v in (d.get("features") or {}).items()}
            rels = [Relation(**r) for r in d.get("relations") or []]
            return cls(
                feats,
                rels,
                d.get("model"),
                None if d.get("model_version") is None else str(d["model_version"]),
                int(d.get("schema_version", 1)),
                bool(d.get("allow_extra", True)),
            )
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"not a schema ({exc}); expected {{'features': {{name: {{'kind': ...}}}}}}") from exc

    def save(self, path: str | Path) -> None:
        """Write versioned JSON (``format_version``); see :meth:`load`."""
        doc = {"format": "infersight.schema", "format_version": SCHEMA_FORMAT_VERSION, **self.to_dict()}
        Path(path).write_text(json.dumps(doc, indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read a schema file, or the schema inside a reference profile.

        >>> # Schema.load("schema.json") or Schema.load("reference.json")
        """
        from infersight.stats.io import read_versioned_json

        doc = read_versioned_json(path, {"infersight.schema": SCHEMA_FORMAT_VERSION, "infersight.reference": None})
        if doc.get("format") == "infersight.reference":
            return cls.from_dict(doc.get("schema") or {})
        return cls.from_dict(doc)


def _as_object_array(values: Any) -> npt.NDArray[Any]:
    try:
        arr = np.asarray(values)
        if arr.dtype.kind in "biufOUS":
            return arr if arr.ndim == 1 else _objects(values)
    except Exception:
        pass
    return _objects(values)


def _objects(values: Any) -> npt.NDArray[Any]:
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) else [values]
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def _obvious_pattern(values: Sequence[str]) -> str | None:
    if not values:
        return None
    for _, pat in _PATTERNS:
        rx = re.compile(pat)
        if all(rx.fullmatch(v) for v in values):
            return pat
    return None


class NumericFacts(NamedTuple):
    """What numeric rules are inferred from (``min``/``max`` of the finite values, ``None``
    when there are none)."""

    required: bool
    nullable: bool
    allow_inf: bool
    min: float | None
    max: float | None
    integer: bool


def _numeric_rules(fs: FeatureSchema, facts: NumericFacts, tolerance: float) -> FeatureSchema:
    fs.required, fs.nullable, fs.allow_inf = facts.required, facts.nullable, facts.allow_inf
    if facts.min is not None and facts.max is not None:
        lo, hi = facts.min, facts.max
        pad = tolerance * (hi - lo) if hi > lo else tolerance * max(abs(lo), 1.0)
        fs.min = _round(lo - pad)
        fs.max = _round(hi + pad)
        if lo >= 0 and fs.min < 0:
            fs.min = 0.0
        fs.integer = facts.integer
    return fs


def _find_relations(columns: Mapping[str, npt.NDArray[Any]], schema: Schema) -> list[Relation]:
    names = [n for n, f in schema.features.items() if f.kind == "numeric"]
    if len(names) < 2:
        return []
    m = np.column_stack([clean_column(columns[n], "numeric") for n in names])[:10_000]
    rels = []
    with np.errstate(invalid="ignore"):
        for i, a in enumerate(names):
            le = np.all((m[:, [i]] <= m) | np.isnan(m[:, [i]]) | np.isnan(m), axis=0)
            eq = np.all((m[:, [i]] == m) | np.isnan(m[:, [i]]) | np.isnan(m), axis=0)
            for j in np.flatnonzero(le & ~eq):
                if j != i:
                    rels.append(Relation(a, "<=", names[j]))
    return rels


# -- type hints → rules ---------------------------------------------------------------------


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) != len(args)
    return hint, False


def _unwrap_list(hint: Any) -> Any:
    if typing.get_origin(hint) in (list, list, Sequence, tuple) and typing.get_args(hint):
        return typing.get_args(hint)[0]
    return hint


def _record_fields(hint: Any) -> dict[str, tuple[Any, bool, tuple[Any, ...]]] | None:
    """Fields of a pydantic model, dataclass or TypedDict: name → (annotation, has default, metadata)."""
    model_fields = getattr(hint, "model_fields", None)
    if isinstance(model_fields, dict) and isinstance(hint, type):
        out = {}
        for name, f in model_fields.items():
            key = getattr(f, "alias", None) or name
            out[key] = (f.annotation, not f.is_required(), tuple(getattr(f, "metadata", ()) or ()))
        return out
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint, include_extras=True)
        return {
            f.name: (
                hints.get(f.name, Any),
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
                (),
            )
            for f in dataclasses.fields(hint)
        }
    if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__annotations__"):
        required = getattr(hint, "__required_keys__", set(hint.__annotations__))
        hints = typing.get_type_hints(hint, include_extras=True)
        return {k: (v, k not in required, ()) for k, v in hints.items()}
    return None


def _feature_from_hint(name: str, hint: Any, meta: tuple[Any, ...]) -> FeatureSchema | None:
    metadata = list(meta)
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extra = typing.get_args(hint)
        metadata.extend(extra)
    hint, optional = _strip_optional(hint)
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extra = typing.get_args(hint)
        metadata.extend(extra)
    origin = typing.get_origin(hint)
    fs: FeatureSchema | None
    if origin is typing.Literal:
        values = list(typing.get_args(hint))
        if all(isinstance(v, bool) for v in values):
            fs = FeatureSchema(name, "boolean")
        elif all(isinstance(v, str) for v in values):
            fs = FeatureSchema(name, "categorical", allowed=sorted(values))
        elif all(isinstance(v, numbers.Real) for v in values):
            fs = FeatureSchema(name, "numeric", allowed=sorted(float(v) for v in values))
        else:
            return None
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        vals = [m.value for m in hint]
        allowed = vals if all(isinstance(v, str) for v in vals) else [m.name for m in hint]
        fs = FeatureSchema(name, "categorical", allowed=sorted(allowed))
    elif hint is bool:
        fs = FeatureSchema(name, "boolean")
    elif hint is int:
        fs = FeatureSchema(name, "numeric", integer=True)
    elif hint is float or (isinstance(hint, type) and issubclass(hint, numbers.Real)):
        fs = FeatureSchema(name, "numeric")
    elif hint is str:
        fs = FeatureSchema(name, "text")
    elif origin in (list, tuple, list, Sequence) or hint in (list, tuple) or hint is np.ndarray:
        fs = FeatureSchema(name, "array")
    else:
        return None
    fs.nullable = optional
    for m in metadata:
        _apply_constraint(fs, m)
    return fs


def _apply_constraint(fs: FeatureSchema, m: Any) -> None:
    """Read annotated-types / pydantic constraint objects by their attribute names."""
    for attr in ("ge", "gt"):
        v = getattr(m, attr, None)
        if isinstance(v, numbers.Real):
            fs.min = float(v) if fs.min is None else max(fs.min, float(v))
            if attr == "gt":  # exclusive bounds become inclusive rules on the next representable value
                fs.min = float(np.nextafter(float(v), math.inf))
    for attr in ("le", "lt"):
        v = getattr(m, attr, None)
        if isinstance(v, numbers.Real):
            fs.max = float(v) if fs.max is None else min(fs.max, float(v))
            if attr == "lt":
                fs.max = float(np.nextafter(float(v), -math.inf))
    for attr in ("min_length", "max_length"):
        v = getattr(m, attr, None)
        if isinstance(v, int):
            setattr(fs, attr, v)
    pattern = getattr(m, "pattern", None)
    if isinstance(pattern, str):
        fs.regex = pattern
