"""Category tests: chi-square, total variation, share of never-seen categories.

Example:
    >>> ref = {"a": 500, "b": 500}
    >>> round(TotalVariation().fit(ref).score_counts({"a": 80, "b": 20}).statistic, 3)
    0.3
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from infersight.stats.drift._dist import chi2_isf, chi2_sf
from infersight.stats.drift.base import CategoricalMethod
from infersight.stats.result import DriftResult

__all__ = ["ChiSquare", "TotalVariation", "UnseenRate", "chi2"]


def chi2(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> tuple[float, int, float]:
    """Pearson chi² of the 2×K table [r; c] (= scipy chi2_contingency, correction=False)."""
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    if r.size < 2:
        return 0.0, 0, 1.0
    table = np.vstack([r, c])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = int(r.size - 1)
    return stat, dof, chi2_sf(stat, dof)


class ChiSquare(CategoricalMethod):
    """Pearson chi-square on the reference-vs-current table; drift when p < ``alpha``;
    equals ``scipy.stats.chi2_contingency(table, correction=False)``."""

    name = "chi2"

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        stat, dof, p = chi2(r, c)
        crit = chi2_isf(self.alpha, dof) if dof else math.inf
        return DriftResult(self.name, stat, crit, p, p < self.alpha, None, int(r.sum()), int(c.sum()), {"dof": dof})


class TotalVariation(CategoricalMethod):
    """½ Σ |p - q| over categories; drift when >= ``threshold`` (0.1)."""

    name = "total_variation"

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        stat = float(0.5 * np.abs(r / r.sum() - c / c.sum()).sum())
        return DriftResult(
            self.name, stat, self.threshold, None, stat >= self.threshold, None, int(r.sum()), int(c.sum())
        )


class UnseenRate(CategoricalMethod):
    """Share of current rows whose category never occurred in the reference (``threshold`` 0.01)."""

    name = "unseen_rate"
    default_threshold = 0.01

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        stat = float(c[r == 0].sum() / c.sum())
        unseen = [labels[i] for i in np.flatnonzero((r == 0) & (c > 0))[:10]]
        drift = stat >= self.threshold
        return DriftResult(
            self.name,
            stat,
            self.threshold,
            None,
            drift,
            "unseen_categories" if drift else None,
            int(r.sum()),
            int(c.sum()),
            {"unseen": unseen},
        )
