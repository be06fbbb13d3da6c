"""Label shift without labels: black-box shift estimation (BBSE).

Example:
    >>> from infersight.stats.reference import Confusion
    >>> conf = Confusion(["a", "b"], np.array([[90, 10], [10, 90]]))
    >>> BBSE().fit(conf).score_counts({"a": 500, "b": 500}).drift
    False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.drift._samples import counts as to_counts
from infersight.stats.drift.base import DriftMethod
from infersight.stats.drift.categorical import chi2
from infersight.stats.result import DriftResult

__all__ = ["BBSE"]


class BBSE(DriftMethod):
    """Black-box shift estimation (Lipton et al., 2018): current label distribution from the
    reference confusion matrix and the current predicted-label counts, without labels.

    ``statistic`` is the total-variation distance between estimated current and reference
    label distributions; ``details["estimated"]`` maps label → share.

    >>> from infersight.stats.reference import Confusion
    >>> conf = Confusion(["a", "b"], np.array([[90, 10], [10, 90]]))
    >>> r = BBSE().fit(conf).score_counts({"a": 260, "b": 740})
    >>> round(r.details["estimated"]["b"], 2), r.drift
    (0.8, True)
    """

    name = "bbse"

    def __init__(self, threshold: float | None = None, alpha: float = 0.001, min_rows: int = 1) -> None:
        super().__init__(threshold, alpha, min_rows)

    def fit(self, reference: Any) -> BBSE:
        """``reference``: a ``Reference`` with a confusion matrix, or a ``Confusion``."""
        conf = getattr(reference, "confusion", reference)
        if conf is None or not hasattr(conf, "matrix"):
            raise ValueError("BBSE needs a confusion matrix: profile with --prediction COL --target COL")
        self.labels = list(conf.labels)
        joint = conf.matrix.astype(np.float64)
        self._n = int(joint.sum())
        self._joint = joint / joint.sum()  # P(ŷ = i, y = j)
        self._prior = self._joint.sum(0)  # P(y = j)
        self._pred = self._joint.sum(1)  # P(ŷ = i)
        return self

    def score(self, predictions: npt.ArrayLike) -> DriftResult:
        return self.score_counts(to_counts(predictions))

    def score_window(self, window: Any) -> DriftResult:
        """The window's predicted-label counts."""
        return self.score_counts(window.categories or {})

    def score_counts(self, counts: Mapping[str, int]) -> DriftResult:
        q = np.array([counts.get(k, 0) for k in self.labels], np.float64)
        n = int(q.sum())
        if n == 0:
            return DriftResult(self.name, math.nan, self.threshold, None, False, None, self._n, 0)
        q /= n
        # C w = q with C[i, j] = P(ŷ = i, y = j); w_j = P_cur(y = j) / P_ref(y = j).
        w, *_ = np.linalg.lstsq(self._joint, q, rcond=None)
        est = np.clip(w * self._prior, 0, None)
        est = est / est.sum() if est.sum() > 0 else self._prior
        stat = float(0.5 * np.abs(est - self._prior).sum())
        _, _, p = chi2(self._pred * self._n, q * n)
        unseen = sum(v for k, v in counts.items() if k not in self.labels)
        drift = bool(stat >= self.threshold and p < self.alpha)
        cause = "unseen_categories" if unseen else ("label_shift" if drift else None)
        return DriftResult(
            self.name,
            stat,
            self.threshold,
            p,
            drift or bool(unseen),
            cause,
            self._n,
            n,
            {"estimated": dict(zip(self.labels, est.tolist())), "weights": dict(zip(self.labels, w.tolist()))},
        )
