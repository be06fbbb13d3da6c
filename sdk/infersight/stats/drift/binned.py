"""Distances between binned distributions: PSI and Jensen–Shannon (numbers on the reference
deciles; Jensen–Shannon also on categories).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> PSI().fit(rng.normal(size=5000)).score(rng.normal(1, 1, 5000)).drift
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.drift._samples import NumCur, NumRef, num_cur, num_ref, probs_in_bins
from infersight.stats.drift._samples import counts as to_counts
from infersight.stats.drift.base import DriftMethod, NumericMethod
from infersight.stats.reference import FeatureProfile, NumericSummary
from infersight.stats.result import DriftResult
from infersight.stats.sketch import ExpHistogram

__all__ = ["PSI", "JensenShannon"]

_PSI_EPS = 1e-4  # bins empty on one side get this share (the usual PSI smoothing)


def js(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """scipy.spatial.distance.jensenshannon(p, q, base=2)."""
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0) / math.log(2)))


def psi(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """Population stability index of two share vectors (empty bins get 1e-4)."""
    p = np.clip(p, _PSI_EPS, None)
    q = np.clip(q, _PSI_EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


class PSI(NumericMethod):
    """Population stability index on the reference deciles; drift when >= ``threshold`` (0.2)."""

    name = "psi"
    default_threshold = 0.2

    def _compute(self, ref: NumRef, cur: NumCur) -> DriftResult:
        p, q = probs_in_bins(ref, cur)
        stat = psi(p, q)
        return DriftResult(self.name, stat, self.threshold, None, stat >= self.threshold, None, ref.n, cur.n)


class JensenShannon(DriftMethod):
    """Jensen–Shannon distance (base 2, in [0, 1]); drift when >= ``threshold`` (0.1).

    Numeric: on the reference deciles; categorical: on the categories. Equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` on those probabilities.
    """

    name = "jensen_shannon"

    def __init__(self, threshold: float | None = None, alpha: float = 0.001, min_rows: int = 1) -> None:
        super().__init__(threshold, alpha, min_rows)
        self._num: NumRef | None = None
        self._cat: dict[str, int] | None = None

    def fit(self, reference: Any) -> JensenShannon:
        is_cat = (isinstance(reference, FeatureProfile) and reference.categories is not None) or isinstance(
            reference, Mapping
        )
        if not is_cat and not isinstance(reference, (FeatureProfile, NumericSummary, ExpHistogram)):
            arr = np.asarray(reference)
            is_cat = arr.dtype.kind in "OUSb"
        if is_cat:
            self._cat, self._num = to_counts(reference), None
        else:
            self._num, self._cat = num_ref(reference), None
        return self

    def score(self, current: Any) -> DriftResult:
        if self._cat is not None:
            return self.score_counts(to_counts(current))
        return self._numeric(num_cur(current))

    def score_sketch(self, sketch: ExpHistogram) -> DriftResult:
        return self._numeric(num_cur(sketch))

    def score_window(self, window: Any) -> DriftResult:
        if self._cat is not None:
            return self.score_counts(window.categories or {})
        if window.values is not None:
            return self.score(window.values)
        return self.score_sketch(window.sketch if window.sketch is not None else ExpHistogram())

    def score_counts(self, counts: Mapping[str, int]) -> DriftResult:
        if self._cat is None:
            raise RuntimeError("JensenShannon was fitted on numbers (or not at all); fit it on categories first")
        labels = list(self._cat) + [k for k in counts if k not in self._cat]
        p = np.array([self._cat.get(k, 0) for k in labels], np.float64)
        q = np.array([counts.get(k, 0) for k in labels], np.float64)
        return self._result(p, q, int(p.sum()), int(q.sum()))

    def _numeric(self, cur: NumCur) -> DriftResult:
        if self._num is None:
            raise RuntimeError("JensenShannon: call fit(reference) before score()")
        p, q = probs_in_bins(self._num, cur)
        return self._result(p, q, self._num.n, cur.n)

    def _result(self, p: npt.NDArray[np.float64], q: npt.NDArray[np.float64], m: int, n: int) -> DriftResult:
        if p.sum() == 0 or q.sum() == 0 or n < self.min_rows:
            return DriftResult(self.name, math.nan, self.threshold, None, False, None, m, n)
        stat = js(p, q)
        return DriftResult(self.name, stat, self.threshold, None, stat >= self.threshold, None, m, n)
