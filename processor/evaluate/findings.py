"""What evaluation finds, in one shape for every evaluator (drift, data quality, model quality,
version comparison, and the SLOs that come next), and the interface an evaluator implements.

A :class:`Finding` is one verdict on one subject (a feature, an output, a quality metric) of
one model, version and slice over one evaluation window. The alert engine reads findings
only; the metric outputs (``ml.drift.*``, ``ml.quality.*``, ``ml.model.age``) and the API are
rendered from them. So a new evaluator is one class with :meth:`Evaluator.evaluate`, and its
verdicts reach alerts, ``/metrics`` and OTLP without further wiring.

Example:
    >>> f = Finding(model="churn", version="3", window_size=3600, window_start=7200, kind="drift",
    ...     subject="age", status="breach", statistic=0.31, threshold=0.1, p_value=1e-9,
    ...     cause="distribution_shift")
    >>> f.cause_class, f.key
    ('world', 'churn|3||3600|7200|drift|age')
    >>> Finding.from_dict(f.to_dict()) == f
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

from infersight.stats.causes import cause_class

__all__ = [
    "Finding",
    "Evaluator",
    "EvaluationContext",
    "cause_class",
    "STATUSES",
    "KINDS",
    "pack_findings",
    "unpack_findings",
    "packed_columns",
]

# ok: nothing to report; warning: past the threshold but not (yet) alert-worthy on its own
# (e.g. too few rows, or a single window); breach: the condition an alert policy acts on;
# no_data: the subject should have data in this window and has none.
STATUSES = ("ok", "warning", "breach", "no_data")
# drift: a feature's or output's distribution; data_quality: missing values, schema
# violations, unseen categories, a feature that stopped arriving; quality: a metric on
# labelled traffic; version: one version compared with another; age: time since the
# version first served; slo: reserved for the SLO evaluator.
KINDS = ("drift", "data_quality", "quality", "version", "age", "slo")


@dataclass(frozen=True)
class Finding:
    """One verdict: ``kind`` on ``subject`` of ``model``/``version``/``slice`` over the window
    ``[window_start, window_start + window_size)`` (Unix seconds).

    ``version`` ``""`` means all versions together; ``slice`` ``""`` all traffic, otherwise a
    canonical ``"key=value,key=value"`` with sorted keys. ``statistic`` and ``threshold`` are on
    the evaluator's scale (``statistic / threshold > 1`` is past it); ``since`` is the start of
    the window where the change began (the change point), when one was located. ``evidence``
    holds up to a few ``{"trace_id", "span_id", "request_id"}`` of requests that drove it.
    ``revision`` counts re-evaluations of the same window (late data re-opens a verdict: the
    earlier revision stays in history).
    """

    model: str
    version: str
    window_size: int
    window_start: int
    kind: str
    subject: str
    status: str
    statistic: float = math.nan
    threshold: float = math.nan
    p_value: float | None = None
    cause: str | None = None
    method: str | None = None
    slice: str = ""
    since: int | None = None
    n_reference: int = 0
    n_current: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Mapping[str, str], ...] = ()
    evaluated_at: float = 0.0
    revision: int = 0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Finding.status: {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.kind not in KINDS:
            raise ValueError(f"Finding.kind: {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def cause_class(self) -> str | None:
        return cause_class(self.cause)

    @property
    def key(self) -> str:
        """Unique per (model, version, slice, window, kind, subject): a re-evaluation replaces."""
        return "|".join(
            (
                self.model,
                self.version,
                self.slice,
                str(self.window_size),
                str(self.window_start),
                self.kind,
                self.subject,
            )
        )

    @property
    def severity(self) -> float:
        """``statistic / threshold`` (0 when either is missing or not finite)."""
        return severity_of(self.statistic, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers become ``None``), with ``cause_class`` added.

        Fields are read as they are, not through ``dataclasses.asdict``: its deep copy took a
        third of an evaluation pass, and details and evidence are plain JSON data already
        (their top levels are copied)."""
        d = dict(self.__dict__)  # the fields, in their order (a frozen dataclass without slots)
        for k in ("statistic", "threshold", "p_value"):
            v = d[k]
            if type(v) is not float or not math.isfinite(v):
                d[k] = None if v is None or not math.isfinite(v) else float(v)
        d["details"] = dict(self.details)
        d["evidence"] = [dict(e) for e in self.evidence]
        d["cause_class"] = self.cause_class
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("statistic", "threshold"):
            if known.get(k) is None:
                known[k] = math.nan
        known["evidence"] = tuple(dict(e) for e in known.get("evidence", ()))
        known["details"] = dict(known.get("details", {}))
        return cls(**known)


def severity_of(statistic: float | None, threshold: float | None) -> float:
    """:attr:`Finding.severity` from the two numbers (``None`` read as missing), for callers
    that hold a stored finding's body and need no more of it.

    >>> severity_of(0.5, 0.25), severity_of(None, 0.1), severity_of(0.3, 0.0)
    (2.0, 0.0, 0.0)
    """
    if statistic is None or threshold is None:
        return 0.0
    if not (math.isfinite(statistic) and math.isfinite(threshold)) or not threshold:
        return 0.0
    return statistic / threshold


_FIELDS = tuple(Finding.__dataclass_fields__)
# A stored body's keys: the fields, then the derived cause class (Finding.to_dict's order).
_BODY_KEYS = (*_FIELDS, "cause_class")
# Fields a window's findings usually share (one model, window and pass): stored once.
_SHAREABLE = ("model", "version", "window_size", "window_start", "slice", "evaluated_at", "revision")
_FLOATS = ("statistic", "threshold", "p_value")


def pack_findings(findings: list[Finding]) -> dict[str, Any]:
    """One window's findings as one stored body: the fields they all share once (``shared``),
    the others as a table (``columns``, one row per finding in ``rows``), each finding's
    details as a row too (``[shape, values...]``, the keys of each shape once in
    ``details_keys``).

    The same numbers and strings as each :meth:`Finding.to_dict`, without a dict per finding:
    a pass stores ~20,000 findings, and writing every field name of each one (its JSON text,
    then reading it back for the change-point history) was a fifth of the pass.
    :func:`unpack_findings` gives the bodies back.

    >>> f = Finding("churn", "", 300, 0, "drift", "age", "breach", 0.31, 0.1, 1e-9, cause="distribution_shift")
    >>> unpack_findings(pack_findings([f])) == [f.to_dict()]
    True
    """
    shared: dict[str, Any] = {}
    if findings:
        dicts = [f.__dict__ for f in findings]
        for k in _SHAREABLE:
            column = list(map(itemgetter(k), dicts))
            v = column[0]
            if column.count(v) == len(column) and set(map(type, column)) == {type(v)}:
                shared[k] = v
    columns = [k for k in _FIELDS if k not in shared]
    floats = [i for i, k in enumerate(columns) if k in _FLOATS]
    i_details = columns.index("details")
    i_evidence = columns.index("evidence")
    get = itemgetter(*columns)
    isfinite = math.isfinite
    rows: list[list[Any]] = []
    shapes: dict[tuple[Any, ...], int] = {}
    key_lists: list[list[str]] = []
    for f in findings:
        row = list(get(f.__dict__))
        for i in floats:  # as to_dict writes them: finite floats, None otherwise
            v = row[i]
            if type(v) is not float or not isfinite(v):
                row[i] = None if v is None or not isfinite(v) else float(v)
        ev = row[i_evidence]
        row[i_evidence] = [dict(e) for e in ev] if ev else []
        det = row[i_details]
        keys = tuple(det)
        shape = shapes.get(keys)
        if shape is None:
            # details keyed by strings only (all of them, in practice) are a row too: their
            # keys once per window; others stay an object (JSON makes its keys strings)
            shape = shapes[keys] = len(key_lists) if all(type(k) is str for k in keys) else -1
            if shape >= 0:
                key_lists.append(list(keys))
        row[i_details] = [shape, *det.values()] if shape >= 0 else dict(det)
        row.append(cause_class(f.cause) if f.cause else None)
        rows.append(row)
    return {
        "shared": shared,
        "columns": [*columns, "cause_class"],
        "rows": rows,
        "details_keys": key_lists,
    }


def unpack_findings(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The finding bodies (:meth:`Finding.to_dict`) of a stored window record: one written by
    :func:`pack_findings`, or the earlier shape ``{"findings": [<body>, ...]}``.

    >>> unpack_findings({"findings": [{"subject": "x"}]})
    [{'subject': 'x'}]
    """
    if "rows" not in body:
        return list(body.get("findings", ()))
    shared, columns = body.get("shared", {}), body["columns"]
    shapes = body.get("details_keys", ())
    out = []
    for row in body["rows"]:
        d = dict(zip(columns, row))
        det = d.get("details")
        if type(det) is list:  # [shape, values...]: the keys are the window's shape's
            d["details"] = dict(zip(shapes[det[0]], det[1:]))
        out.append({k: shared[k] if k in shared else d.get(k) for k in _BODY_KEYS if k in shared or k in d})
    return out


def packed_columns(body: Mapping[str, Any], names: tuple[str, ...]) -> list[tuple[Any, ...]] | None:
    """Just the fields ``names`` of each finding in a packed body, as tuples (``None`` for a
    body in the earlier shape: read it with :func:`unpack_findings`). What a reader of a few
    fields of many stored findings (the change-point history) takes instead of whole bodies.

    >>> f = Finding("churn", "", 300, 0, "drift", "age", "ok", 0.01, 0.1)
    >>> packed_columns(pack_findings([f]), ("window_start", "subject", "status"))
    [(0, 'age', 'ok')]
    """
    if "rows" not in body:
        return None
    shared, columns, rows = body.get("shared", {}), body["columns"], body["rows"]
    at = {k: i for i, k in enumerate(columns)}
    n = len(rows)
    # column by column (C-level map and zip: a pass's history reads ~10^4 rows)
    cols = [
        [shared[k]] * n if k in shared else list(map(itemgetter(at[k]), rows)) if k in at else [None] * n for k in names
    ]
    return list(zip(*cols))


@dataclass
class EvaluationContext:
    """What an evaluator gets for one closed window of one model.

    ``storage`` is the processor's :class:`~infersight.processor.storage.base.Storage`;
    ``settings`` the model's resolved settings (the ``models:`` section of the config merged
    over its defaults); ``now`` the processor clock (Unix seconds). Evaluators read the window
    ``[start, start + size)`` and, for history, earlier windows of the same size.
    """

    storage: Any
    model: str
    size: int
    start: int
    now: float
    settings: Any = None
    versions: tuple[str, ...] = ()
    # Scratch space shared by the evaluators of one window (e.g. the window's data, read once).
    cache: dict[str, Any] = field(default_factory=dict)

    def finding(self, version: str, kind: str, subject: str, **fields: Any) -> Finding:
        """A :class:`Finding` on this context's model and window, evaluated now: the fields
        every evaluator would otherwise copy from the context by hand.

        >>> ctx = EvaluationContext(None, "churn", 300, 600, now=1000.0)
        >>> ctx.finding("", "drift", "age", status="ok").key
        'churn|||300|600|drift|age'
        """
        return Finding(
            model=self.model,
            version=version,
            window_size=self.size,
            window_start=self.start,
            kind=kind,
            subject=subject,
            evaluated_at=self.now,
            **fields,
        )


class Evaluator(Protocol):
    """One kind of verdict. ``evaluate`` must not raise for bad data (it returns findings that
    say so); it may raise for a broken store, which the loop logs and retries."""

    name: str

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]: ...
