"""The quality metrics equal scikit-learn's on the same pairs (scikit-learn is the dev extra's
reference, never imported by the processor)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from infersight.processor.quality.metrics import classification_report, regression_report, roc_auc_binary


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def _check_classification(t, p, pos=None):
    r = classification_report(t, p, positive=pos)
    assert _close(r["accuracy"], skm.accuracy_score(t, p))
    for avg in ("macro", "weighted"):
        assert _close(r[f"precision_{avg}"], skm.precision_score(t, p, average=avg, zero_division=0))
        assert _close(r[f"recall_{avg}"], skm.recall_score(t, p, average=avg, zero_division=0))
        assert _close(r[f"f1_{avg}"], skm.f1_score(t, p, average=avg, zero_division=0))
    if len(set(t) | set(p)) <= 2 and pos is not None:
        assert _close(r["precision"], skm.precision_score(t, p, pos_label=pos, zero_division=0))
        assert _close(r["recall"], skm.recall_score(t, p, pos_label=pos, zero_division=0))
        assert _close(r["f1"], skm.f1_score(t, p, pos_label=pos, zero_division=0))
    return r


def test_binary_integer_labels():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 2, 500).tolist()
    p = [v if rng.random() < 0.8 else 1 - v for v in t]
    r = _check_classification(t, p, pos=1)
    assert classification_report(t, p)["precision"] == r["precision"]  # 1 is the default positive


def test_string_and_bool_labels():
    t = ["churn", "stay", "stay", "churn", "stay", "stay"]
    p = ["churn", "churn", "stay", "stay", "stay", "stay"]
    _check_classification(t, p, pos="churn")
    tb = [True, False, True, True, False]
    pb = [True, True, False, True, False]
    r = _check_classification(tb, pb, pos=True)
    assert classification_report(tb, pb)["recall"] == r["recall"]  # True is the default positive


def test_single_class_present():
    t = [1, 1, 1, 1]
    p = [1, 0, 1, 1]
    _check_classification(t, p, pos=1)
    only = classification_report([0, 0, 0], [0, 0, 0])
    assert only["accuracy"] == 1.0 and only["precision"] == 0.0  # no positive anywhere: 0, as sklearn
    assert skm.precision_score([0, 0, 0], [0, 0, 0], zero_division=0) == 0.0
    r = classification_report([1, 1, 1], [1, 0, 1], scores=np.array([0.9, 0.2, 0.6]))
    assert math.isnan(r["roc_auc"])  # undefined with one class (sklearn raises)


def test_multiclass_macro_weighted_and_ovr_auc():
    rng = np.random.default_rng(7)
    k, n = 4, 600
    logits = rng.normal(size=(n, k))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    t = [int(rng.choice(k, p=row)) for row in proba]
    p = [int(np.argmax(row)) for row in proba]
    r = _check_classification(t, p)
    assert math.isnan(r["precision"])  # the binary ones do not apply
    r = classification_report(t, p, proba=proba, proba_classes=list(range(k)))
    assert _close(r["roc_auc"], skm.roc_auc_score(t, proba, multi_class="ovr", average="macro"))


def test_binary_auc_with_ties_in_scores():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 2, 400)
    s = np.round(rng.random(400) * 0.5 + t * 0.3, 1)  # many ties
    assert _close(roc_auc_binary(t, s), skm.roc_auc_score(t, s))
    r = classification_report(t.tolist(), (s > 0.5).astype(int).tolist(), scores=s)
    assert _close(r["roc_auc"], skm.roc_auc_score(t, s))


def test_regression():
    rng = np.random.default_rng(5)
    t = rng.normal(10, 3, 300)
    t[:3] = 0.0  # MAPE's epsilon floor
    p = t + rng.normal(0, 1, 300)
    r = regression_report(t, p)
    assert _close(r["mae"], skm.mean_absolute_error(t, p))
    assert _close(r["rmse"], math.sqrt(skm.mean_squared_error(t, p)))
    assert math.isclose(r["mape"], skm.mean_absolute_percentage_error(t, p), rel_tol=1e-9)


def test_misaligned_inputs_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="3 labels but 2 predictions; align them first"):
        classification_report([1, 0, 1], [1, 0])


labels = st.sampled_from([0, 1, 2])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(labels, labels), min_size=1, max_size=60))
def test_hypothesis_classification_pairs(pairs):
    t = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    _check_classification(t, p, pos=1 if len(set(t) | set(p)) <= 2 and 1 in set(t) | set(p) else None)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])), min_size=2, max_size=60)
)
def test_hypothesis_binary_auc(pairs):
    t = np.array([a for a, _ in pairs])
    s = np.array([b for _, b in pairs])
    if t.all() or not t.any():
        assert math.isnan(roc_auc_binary(t, s))
    else:
        assert _close(roc_auc_binary(t, s), skm.roc_auc_score(t, s))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=60))
def test_hypothesis_regression(pairs):
    t = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    r = regression_report(t, p)
    assert math.isclose(r["mae"], skm.mean_absolute_error(t, p), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(r["rmse"], math.sqrt(skm.mean_squared_error(t, p)), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(r["mape"], skm.mean_absolute_percentage_error(t, p), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["no", "yes", "maybe"]), st.sampled_from(["no", "yes", "maybe"])),
        min_size=1,
        max_size=50,
    )
)
def test_hypothesis_string_labels(pairs):
    t = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    classes = set(t) | set(p)
    _check_classification(t, p, pos="yes" if len(classes) <= 2 and "yes" in classes else None)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=50))
def test_hypothesis_bool_labels(pairs):
    t = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    r = _check_classification(t, p, pos=True if True in set(t) | set(p) else None)
    assert _close(r["recall"], skm.recall_score(t, p, pos_label=True, labels=[False, True], zero_division=0))
