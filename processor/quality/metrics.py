"""Model quality on labelled pairs, in numpy: the numbers scikit-learn gives, without it at run time.

Classifiers: accuracy; precision, recall and F1 (for two classes, of the positive class; for any
number, macro and weighted averages over the classes seen in labels or predictions, with 0 for
a class nobody predicted, as scikit-learn's default ``zero_division`` does); ROC AUC from scores
(two classes: the positive class's score; more: one-vs-rest macro average over the classes
present in the labels). Regressors: MAE, RMSE, MAPE (scikit-learn's definition: relative to
``max(|y|, machine epsilon)``).

ROC AUC is the Mann-Whitney statistic with tied scores counted one half, which is the area
under the trapezoidal ROC curve scikit-learn draws; it is undefined (NaN) when only one class
is present.

Example:
    >>> r = classification_report(["a", "b", "b", "a"], ["a", "b", "a", "a"], positive="b")
    >>> r["accuracy"], r["precision"], r["recall"]
    (0.75, 1.0, 0.5)
    >>> regression_report([1.0, 2.0], [1.5, 2.0])["mae"]
    0.25
    >>> roc_auc_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "classification_report",
    "regression_report",
    "roc_auc_binary",
    "sort_labels",
    "default_positive",
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "HIGHER_IS_BETTER",
]

CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
)
REGRESSION_METRICS = ("mae", "rmse", "mape")
HIGHER_IS_BETTER = frozenset(CLASSIFICATION_METRICS)


def _label_key(v: Any) -> tuple[int, Any]:
    # Numbers (bools included: True == 1) sort before text, so mixed label sets still order.
    if isinstance(v, (bool, int, float, np.number)):
        return (0, float(v))
    return (1, str(v))


def sort_labels(labels: Any) -> list[Any]:
    """Distinct labels in a stable order (numbers by value, then text).

    >>> sort_labels(["b", 1, "a", True, 0])
    [0, 1, 'a', 'b']
    """
    seen: dict[Any, Any] = {}
    for v in labels:
        seen.setdefault(v, v)
    return sorted(seen.values(), key=_label_key)


def default_positive(classes: Sequence[Any]) -> Any:
    """The positive class of a two-class problem: ``1`` (or ``True``) when present, else the
    last in :func:`sort_labels` order (``"yes"`` of ``"no"``/``"yes"``). Configure
    ``positive_label`` when that is not the one you mean."""
    numeric = [c for c in classes if not isinstance(c, str)]
    if len(numeric) == len(classes) and all(c in (0, 1) for c in numeric):
        return next((c for c in numeric if c == 1), True if any(isinstance(c, bool) for c in numeric) else 1)
    return sort_labels(classes)[-1]


def _encode(values: Sequence[Any], index: dict[Any, int]) -> np.ndarray:
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def roc_auc_binary(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve for boolean/0-1 ``y`` and real ``score`` (ties count one half);
    NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    # average ranks of tied groups (1-based)
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def classification_report(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    *,
    scores: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    proba_classes: Sequence[Any] | None = None,
    positive: Any = None,
) -> dict[str, float]:
    """Classifier metrics on aligned ``y_true``/``y_pred`` labels (any hashable values).

    ``scores``: for two classes, the positive class's score per pair (ROC AUC). ``proba``: an
    ``(n, k)`` matrix of class scores whose columns are ``proba_classes`` (one-vs-rest ROC AUC
    for more than two classes; for two, the positive class's column is used). ``positive``: the
    positive class (default :func:`default_positive`). Metrics that do not apply (the binary
    ones for more than two classes, ROC AUC without scores or with one class) are NaN.
    """
    n = len(y_true)
    if n != len(y_pred):
        raise ValueError(f"classification_report: {n} labels but {len(y_pred)} predictions; align them first")
    out = dict.fromkeys(CLASSIFICATION_METRICS, math.nan)
    if n == 0:
        return out
    classes = sort_labels(list(y_true) + list(y_pred))
    index = {c: i for i, c in enumerate(classes)}
    t = _encode(y_true, index)
    p = _encode(y_pred, index)
    k = len(classes)
    out["accuracy"] = float(np.mean(t == p))
    tp = np.bincount(t[t == p], minlength=k).astype(np.float64)
    pred_n = np.bincount(p, minlength=k).astype(np.float64)
    true_n = np.bincount(t, minlength=k).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(pred_n > 0, tp / pred_n, 0.0)
        rec = np.where(true_n > 0, tp / true_n, 0.0)
        denom = pred_n + true_n
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
    out["precision_macro"] = float(prec.mean())
    out["recall_macro"] = float(rec.mean())
    out["f1_macro"] = float(f1.mean())
    w = true_n / true_n.sum()
    out["precision_weighted"] = float((prec * w).sum())
    out["recall_weighted"] = float((rec * w).sum())
    out["f1_weighted"] = float((f1 * w).sum())
    if k <= 2:
        pos = positive if positive is not None else default_positive(classes)
        if pos in index:
            i = index[pos]
            out["precision"], out["recall"], out["f1"] = float(prec[i]), float(rec[i]), float(f1[i])
        else:  # the positive class appears nowhere: nothing predicted or labelled positive
            out["precision"] = out["recall"] = out["f1"] = 0.0
        if scores is None and proba is not None and proba_classes is not None and pos in list(proba_classes):
            scores = np.asarray(proba, dtype=np.float64)[:, list(proba_classes).index(pos)]
        if scores is not None:
            out["roc_auc"] = roc_auc_binary(t == index.get(pos, -1), np.asarray(scores, dtype=np.float64))
    elif proba is not None and proba_classes is not None:
        out["roc_auc"] = _ovr_auc(list(y_true), np.asarray(proba, dtype=np.float64), list(proba_classes))
    return out


def _ovr_auc(y_true: list[Any], proba: np.ndarray, proba_classes: list[Any]) -> float:
    present = sort_labels(y_true)
    col = {c: i for i, c in enumerate(proba_classes)}
    if len(present) < 2 or any(c not in col for c in present):
        return math.nan
    aucs = [roc_auc_binary(np.array([v == c for v in y_true]), proba[:, col[c]]) for c in present]
    return float(np.mean(aucs))


def regression_report(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (a fraction, not percent) on aligned finite numbers."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"regression_report: {t.size} labels but {p.size} predictions; align them first")
    if t.size == 0:
        return dict.fromkeys(REGRESSION_METRICS, math.nan)
    err = p - t
    eps = np.finfo(np.float64).eps
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mape": float(np.mean(np.abs(err) / np.maximum(np.abs(t), eps))),
    }
