"""Outcomes joined with their labels → aligned (label, prediction) pairs → the quality of a range.

The join itself is the store's (:meth:`Storage.outcomes`: every call's outcome, by model and
request ID, with its feedback); this module turns its rows into pairs and scores them:

* A batch call's outcome holds one prediction per row; its feedback may be a sequence aligned
  with the rows (``record_feedback(rid, [y0, y1, ...])``), giving one pair per row. A scalar
  label for a one-row call pairs with its one prediction. Anything else cannot be aligned and is
  counted (``unaligned``), never guessed.
* A row's prediction may be a label (text, bool, integer), a number (a regressor's value, or a
  two-class score in [0, 1]), a vector of class scores (``predict_proba``'s row: columns are
  classes 0..k-1), or a dict with ``label``/``class``, ``score``/``probability`` and
  ``probabilities``/``scores`` (class → score).
* Pairs without a usable prediction (``null``: the SDK ships NaN/Inf as ``null``, or a
  prediction cut for size) or label are excluded and counted by reason.

The task is configured per model (``task:``) or inferred: text or bool labels, or predictions
that are labels, class vectors or dicts, make a classifier; integer labels with few distinct
values (at most 20) and integer or [0, 1] predictions too; other numbers make a regressor.

Example:
    >>> rows = [{"prediction": 1, "rows": 1, "actual": 1, "version": "1", "time_ns": 0,
    ...          "feedback_time_ns": 5 * 10**9, "feedback_attributes": {}, "request_id": "a",
    ...          "trace_id": "", "span_id": "", "truncated": False}]
    >>> r = score_rows(rows, ModelQuality())
    >>> r.task, r.metrics["accuracy"], r.labelled, r.label_delay["p50"]
    ('classification', 1.0, 1, 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infersight.processor.quality.metrics import (
    classification_report,
    default_positive,
    regression_report,
    sort_labels,
)
from infersight.processor.quality.settings import ModelQuality

__all__ = ["Pairs", "QualityResult", "pairs_from_rows", "score_rows", "score_pairs", "slice_key"]

_LABEL_KEYS = ("label", "class", "prediction")
_SCORE_KEYS = ("score", "probability")
_PROBA_KEYS = ("probabilities", "scores", "proba")
_VALUE_KEYS = ("value", "prediction", "score")
_MAX_CLASSES_INFERRED = 20


@dataclass
class Pairs:
    """Aligned pairs (one per labelled row) and what the rows held besides."""

    actual: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    version: list[str] = field(default_factory=list)
    time_ns: list[int] = field(default_factory=list)
    request_id: list[str] = field(default_factory=list)
    calls: int = 0  # outcomes in the range
    labelled_calls: int = 0  # of which have feedback
    delays: list[float] = field(default_factory=list)  # seconds, one per labelled call
    excluded: dict[str, int] = field(default_factory=dict)
    evidence: list[dict[str, str]] = field(default_factory=list)  # labelled calls the model got wrong

    def exclude(self, why: str, n: int = 1) -> None:
        self.excluded[why] = self.excluded.get(why, 0) + n


@dataclass
class QualityResult:
    """The quality of one range (and version/slice): the metrics and how they were obtained."""

    task: str
    metrics: dict[str, float]
    labelled: int  # pairs scored
    calls: int
    labelled_calls: int
    coverage: float  # labelled calls / calls
    label_delay: dict[str, float | None]
    excluded: dict[str, int]
    classes: list[Any] = field(default_factory=list)
    positive_label: Any = None
    correct: int | None = None  # classifier pairs right (for the drop test)
    abs_errors: np.ndarray | None = None  # regressor |error| per pair (for the drop test)
    evidence: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metrics": {k: (None if not math.isfinite(v) else v) for k, v in self.metrics.items()},
            "labelled": self.labelled,
            "calls": self.calls,
            "labelled_calls": self.labelled_calls,
            "coverage": None if not math.isfinite(self.coverage) else self.coverage,
            "label_delay_seconds": self.label_delay,
            "excluded": dict(self.excluded),
            "classes": [c if isinstance(c, (str, int, float, bool)) else str(c) for c in self.classes],
            "positive_label": self.positive_label,
        }


def slice_key(attrs: Mapping[str, Any], names: Sequence[str]) -> str:
    """The canonical ``key=value,key=value`` (sorted keys) of ``attrs`` over ``names``; ``""``
    when none of them is present.

    >>> slice_key({"region": "eu", "device": "ios", "x": 1}, ["region", "device"])
    'device=ios,region=eu'
    """
    return ",".join(f"{k}={attrs[k]}" for k in sorted(names) if k in attrs)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def pairs_from_rows(
    rows: Sequence[Mapping[str, Any]], slice_filter: str | None = None, slices: Sequence[str] = ()
) -> Pairs:
    """Rows of :meth:`Storage.outcomes` → aligned pairs. ``slice_filter`` keeps the labelled
    calls whose feedback attributes give that :func:`slice_key` over ``slices`` (calls without
    a label cannot be placed in a slice: they count in ``calls`` only without a filter)."""
    out = Pairs()
    for r in rows:
        actual = r.get("actual")
        labelled = r.get("feedback_time_ns") is not None
        if slice_filter is not None:
            if not labelled or slice_key(r.get("feedback_attributes") or {}, slices) != slice_filter:
                continue
        out.calls += 1
        if not labelled:
            continue
        out.labelled_calls += 1
        out.delays.append((r["feedback_time_ns"] - r["time_ns"]) / 1e9)
        pred = r.get("prediction")
        n = int(r.get("rows") or 1)
        if r.get("truncated") or pred is None and n > 1:
            out.exclude("prediction_cut_for_size" if r.get("truncated") else "missing_prediction", n)
            continue
        if isinstance(actual, list):
            if not isinstance(pred, list) or len(actual) != len(pred) or len(pred) != n:
                out.exclude("unaligned", max(n, len(actual)))
                continue
            got = list(zip(actual, pred))
        else:
            if n != 1:
                out.exclude("unaligned", n)
                continue
            if isinstance(pred, list) and len(pred) == 1:
                pred = pred[0]
            got = [(actual, pred)]
        for a, p in got:
            if _missing(a):
                out.exclude("missing_label")
            elif _missing(p):
                out.exclude("missing_prediction")
            else:
                out.actual.append(a)
                out.predicted.append(p)
                out.version.append(r.get("version", ""))
                out.time_ns.append(r["time_ns"])
                out.request_id.append(r["request_id"])
        if len(out.evidence) < 5 and got and any(a != p for a, p in got if not _missing(a) and not _missing(p)):
            out.evidence.append(
                {"request_id": r["request_id"], "trace_id": r.get("trace_id", ""), "span_id": r.get("span_id", "")}
            )
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _infer_task(pairs: Pairs) -> str:
    if any(isinstance(a, (str, bool)) for a in pairs.actual):
        return "classification"
    if any(isinstance(p, (str, bool, dict)) or (isinstance(p, list) and len(p) > 1) for p in pairs.predicted):
        return "classification"
    if not all(_is_number(a) for a in pairs.actual):
        return "classification"
    actual_int = all(float(a).is_integer() for a in pairs.actual)
    if actual_int and len(set(pairs.actual)) <= _MAX_CLASSES_INFERRED:
        if all(_is_number(p) and (float(p).is_integer() or 0.0 <= p <= 1.0) for p in pairs.predicted):
            return "classification"
    return "regression"


def _as_label(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, (list, dict)):
        return str(v)
    return v


def _classify(pairs: Pairs, mq: ModelQuality) -> tuple[dict[str, float], list[Any], Any, int]:
    actual = [_as_label(a) for a in pairs.actual]
    # First pass: what each prediction says (label, score, class vector) before classes are known.
    parsed: list[tuple[Any, float | None, Any]] = []
    for p in pairs.predicted:
        label: Any = None
        score: float | None = None
        proba: Any = None
        if isinstance(p, dict):
            label = next((p[k] for k in _LABEL_KEYS if k in p), None)
            s: Any = next((p[k] for k in _SCORE_KEYS if k in p), None)
            score = float(s) if _is_number(s) else None
            proba = next((p[k] for k in _PROBA_KEYS if isinstance(p.get(k), (dict, list))), None)
        elif isinstance(p, list):
            proba = p
        elif _is_number(p) and not float(p).is_integer():
            score = float(p)
        else:
            label = p
        if label is None and isinstance(proba, list) and proba and all(_is_number(x) for x in proba):
            label = int(np.argmax(proba))
        elif label is None and isinstance(proba, dict) and proba:
            label = max(proba, key=lambda k: proba[k])
        parsed.append((None if label is None else _as_label(label), score, proba))
    known = actual + [lb for lb, _, _ in parsed if lb is not None]
    classes = sort_labels(known)
    positive = mq.positive_label if mq.positive_label is not None else (default_positive(classes) if classes else 1)
    others = [c for c in classes if c != positive]
    negative = others[0] if others else (0 if positive == 1 else None)
    labels: list[Any] = []
    scores: list[float | None] = []
    for lb, score, proba in parsed:
        if lb is None and score is not None:
            lb = positive if score >= mq.threshold else negative
        if score is None and isinstance(proba, dict) and positive in proba:
            score = float(proba[positive])
        if (
            score is None
            and isinstance(proba, list)
            and len(proba) == 2
            and isinstance(positive, int)
            and positive in (0, 1)
        ):
            score = float(proba[positive])
        labels.append(lb)
        scores.append(score)
    keep = [i for i, lb in enumerate(labels) if lb is not None]
    if len(keep) < len(labels):
        pairs.exclude("prediction_without_label", len(labels) - len(keep))
    t = [actual[i] for i in keep]
    p = [labels[i] for i in keep]
    classes = sort_labels(t + p)
    sc = None
    if keep and all(scores[i] is not None for i in keep):
        sc = np.array([scores[i] for i in keep], dtype=np.float64)
    proba_m = None
    proba_classes: list[Any] | None = None
    vecs = [parsed[i][2] for i in keep]
    if keep and len(classes) > 2:
        if all(isinstance(v, list) for v in vecs) and len({len(v) for v in vecs}) == 1:
            proba_m = np.array(vecs, dtype=np.float64)
            proba_classes = list(range(proba_m.shape[1]))
        elif all(isinstance(v, dict) for v in vecs):
            proba_classes = sort_labels([_as_label(k) for v in vecs for k in v])
            proba_m = np.array([[float(v.get(c, v.get(str(c), 0.0))) for c in proba_classes] for v in vecs])
    report = classification_report(
        t, p, scores=sc if len(classes) <= 2 else None, proba=proba_m, proba_classes=proba_classes, positive=positive
    )
    correct = sum(1 for a, b in zip(t, p) if a == b)
    return report, classes, positive, correct


def _regress(pairs: Pairs) -> tuple[dict[str, float], np.ndarray]:
    t, p = [], []
    for a, v in zip(pairs.actual, pairs.predicted):
        if isinstance(v, dict):
            v = next((v[k] for k in _VALUE_KEYS if k in v), None)
        if isinstance(v, list) and len(v) == 1:
            v = v[0]
        if not _is_number(a) or not _is_number(v) or not math.isfinite(v):
            pairs.exclude("not_a_number")
            continue
        t.append(float(a))
        p.append(float(v))
    ta, pa = np.asarray(t), np.asarray(p)
    return regression_report(ta, pa), np.abs(pa - ta)


def _delays(d: Sequence[float]) -> dict[str, float | None]:
    if not d:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(d, dtype=np.float64)
    q = np.quantile(a, [0.5, 0.9, 0.99])
    return {
        "count": int(a.size),
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


def score_pairs(pairs: Pairs, mq: ModelQuality) -> QualityResult:
    """The metrics of ``pairs`` under the model's settings (task, positive label, threshold)."""
    task = mq.task if mq.task != "auto" else (_infer_task(pairs) if pairs.actual else "classification")
    classes: list[Any] = []
    positive: Any = None
    correct: int | None = None
    errors: np.ndarray | None = None
    if task == "classification":
        metrics, classes, positive, correct = _classify(pairs, mq)
        labelled = len(pairs.actual) - pairs.excluded.get("prediction_without_label", 0)
    else:
        metrics, errors = _regress(pairs)
        labelled = int(errors.size)
    return QualityResult(
        task=task,
        metrics=metrics,
        labelled=labelled,
        calls=pairs.calls,
        labelled_calls=pairs.labelled_calls,
        coverage=pairs.labelled_calls / pairs.calls if pairs.calls else math.nan,
        label_delay=_delays(pairs.delays),
        excluded=dict(pairs.excluded),
        classes=classes,
        positive_label=positive,
        correct=correct,
        abs_errors=errors,
        evidence=list(pairs.evidence),
    )


def score_rows(
    rows: Sequence[Mapping[str, Any]], mq: ModelQuality, *, slice_filter: str | None = None
) -> QualityResult:
    """:func:`pairs_from_rows` then :func:`score_pairs`."""
    return score_pairs(pairs_from_rows(rows, slice_filter, mq.slices), mq)
