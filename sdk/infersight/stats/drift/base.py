"""The drift-method interface: ``fit(reference) → score(current) → DriftResult``.

A method is a small object in scikit-learn's manner: :meth:`DriftMethod.fit` takes the
reference in any form the method understands (a raw sample, a profile's ``FeatureProfile``, an
OTel sketch, counts), :meth:`~DriftMethod.score` compares a raw window, and
:meth:`~DriftMethod.score_window` a ``windows.FeatureWindow`` (a sketch or counts, what the
processor holds). Two bases do the common work: :class:`NumericMethod` (subclasses write
``_compute(ref, cur)`` over :mod:`._samples` shapes and get raw, sketch and window scoring)
and :class:`CategoricalMethod` (``_compute(labels, ref_counts, cur_counts)``).

Every method is built from the same :class:`MethodSettings` (``from_settings``), which is how
:class:`~infersight.stats.drift.policy.DriftPolicy` makes any registered method by name.

Example:
    >>> class MeanShift(NumericMethod):
    ...     name = "mean_shift"
    ...     def _compute(self, ref, cur):
    ...         stat = abs(float(cur.quantiles()[2] - ref.quantiles[2])) / (ref.std or 1.0)
    ...         return DriftResult(self.name, stat, self.threshold, None, stat >= self.threshold, None, ref.n, cur.n)
    >>> MeanShift(threshold=0.5).fit([0.0, 1.0, 2.0, 3.0]).score([5.0, 6.0]).drift
    True
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.drift._samples import NumCur, NumRef, num_cur, num_ref
from infersight.stats.drift._samples import counts as to_counts
from infersight.stats.result import DriftResult
from infersight.stats.sketch import ExpHistogram

__all__ = ["DriftMethod", "MethodSettings", "NumericMethod", "CategoricalMethod", "DriftResult"]


@dataclass
class MethodSettings:
    """What a policy knows when it builds a method for one feature.

    ``threshold`` is an explicit threshold (``None``: the method's default); ``min_effect`` the
    policy's effect floor for the feature's kind (the combined methods use it as threshold);
    ``extra`` any other per-feature setting, for methods that take more.
    """

    alpha: float = 0.001
    threshold: float | None = None
    min_effect: float = 0.1
    min_rows: int = 1
    max_unseen: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)


class DriftMethod(ABC):
    """One drift method: fit on a reference, score windows, return a :class:`DriftResult`.

    ``threshold``, ``alpha`` and ``min_rows`` are shared by every method: the statistic's
    threshold (``None``: ``default_threshold``), the significance level of methods with a test,
    and the smallest window judged at all.
    """

    name = "method"
    default_threshold = 0.1

    def __init__(self, threshold: float | None = None, alpha: float = 0.001, min_rows: int = 1) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha!r} must be between 0 and 1, e.g. 0.001")
        self.threshold = self.default_threshold if threshold is None else float(threshold)
        self.alpha = alpha
        self.min_rows = min_rows

    @classmethod
    def from_settings(cls, settings: MethodSettings) -> DriftMethod:
        """The method as a policy configures it for one feature."""
        return cls(threshold=settings.threshold, alpha=settings.alpha, min_rows=settings.min_rows)

    @abstractmethod
    def fit(self, reference: Any) -> Any:
        """Remember the reference; returns ``self``."""

    @abstractmethod
    def score(self, current: Any) -> DriftResult:
        """Compare a raw window (values) with the reference."""

    @abstractmethod
    def score_window(self, window: Any) -> DriftResult:
        """Compare a ``windows.FeatureWindow`` (raw values, a sketch, or counts)."""


class NumericMethod(DriftMethod):
    """fit on a sample / profile / sketch; score a sample (:meth:`score`) or sketch."""

    name = "numeric"
    _ref: NumRef | None = None

    def fit(self, reference: Any) -> Any:
        """``reference``: a 1-D sample, a ``FeatureProfile`` / ``NumericSummary``, or an ``ExpHistogram``."""
        self._ref = num_ref(reference)
        return self

    def score(self, current: npt.ArrayLike) -> DriftResult:
        """Compare a raw 1-D sample (NaN/Inf ignored) with the reference."""
        return self._score(num_cur(current))

    def score_sketch(self, sketch: ExpHistogram) -> DriftResult:
        """Compare an OTel exponential-histogram sketch of the current window."""
        return self._score(num_cur(sketch))

    def score_window(self, window: Any) -> DriftResult:
        """The window's raw values when it kept them, else its sketch (empty: not judged)."""
        if window.values is not None:
            return self.score(window.values)
        return self.score_sketch(window.sketch if window.sketch is not None else ExpHistogram())

    def _score(self, cur: NumCur) -> DriftResult:
        if self._ref is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(reference) before score()")
        if cur.n < self.min_rows or cur.n == 0:
            return DriftResult(
                self.name, math.nan, self.threshold, None, False, None, self._ref.n, cur.n, {"reason": "too_few_rows"}
            )
        return self._compute(self._ref, cur)

    @abstractmethod
    def _compute(self, ref: NumRef, cur: NumCur) -> DriftResult:
        """The statistic of a judged window (at least ``min_rows`` finite values)."""


class CategoricalMethod(DriftMethod):
    """fit on counts / a categorical profile / raw values; score raw values or counts."""

    name = "categorical"
    _ref: dict[str, int] | None = None

    def fit(self, reference: Any) -> Any:
        """``reference``: counts by category, a categorical ``FeatureProfile``, or raw values."""
        self._ref = to_counts(reference)
        return self

    def score(self, current: npt.ArrayLike) -> DriftResult:
        """Compare raw values (``None`` is missing and ignored)."""
        return self.score_counts(to_counts(current))

    def score_window(self, window: Any) -> DriftResult:
        """The window's counts by category."""
        return self.score_counts(window.categories or {})

    def score_counts(self, counts: Mapping[str, int]) -> DriftResult:
        """Compare counts by category (what the SDK's ``ml.feature.category`` counter gives)."""
        if self._ref is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(reference) before score()")
        n = int(sum(counts.values()))
        m = int(sum(self._ref.values()))
        if n < self.min_rows or n == 0:
            return DriftResult(self.name, math.nan, self.threshold, None, False, None, m, n, {"reason": "too_few_rows"})
        labels = list(self._ref) + [k for k in counts if k not in self._ref]
        r = np.array([self._ref.get(k, 0) for k in labels], np.float64)
        c = np.array([counts.get(k, 0) for k in labels], np.float64)
        return self._compute(labels, r, c)

    @abstractmethod
    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        """The statistic of a judged window: ``r`` and ``c`` are counts aligned on ``labels``."""
