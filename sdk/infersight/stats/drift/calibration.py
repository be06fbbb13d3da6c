"""Thresholds calibrated for repeated looks: a false-alarm rate per window, by the bootstrap.

Example:
    >>> from infersight.stats.reference import Reference
    >>> from infersight.stats.drift.binned import PSI
    >>> ref = Reference.from_data({"x": np.random.default_rng(0).normal(size=5000)}, model="m")
    >>> calibrate(PSI(), ref.features["x"], 100, false_alarm_rate=0.01).threshold > 0.05
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.cdf import abs_linear_integral
from infersight.stats.drift._samples import NumRef, num_ref
from infersight.stats.drift.binned import PSI, js, psi
from infersight.stats.drift.combined import CategoricalPolicy, NumericPolicy
from infersight.stats.drift.ks import KS
from infersight.stats.drift.wasserstein import Wasserstein
from infersight.stats.reference import FeatureProfile

__all__ = ["calibrate"]


def calibrate(
    method: Any,
    profile: FeatureProfile,
    n_rows: int,
    *,
    false_alarm_rate: float = 0.001,
    n_boot: int = 2000,
    seed: int = 0,
) -> Any:
    """Fit ``method`` on ``profile`` with its threshold set so that windows of ``n_rows`` drawn
    from the reference cross it with probability ``false_alarm_rate``.

    Null windows are drawn by the bootstrap from the reference itself (multinomial over its
    200 quantile bins or its categories), so any window size costs the same. For the default
    policies the effect floor becomes ``max(min_effect, null quantile)`` and ``alpha`` becomes
    ``false_alarm_rate``. A target expected time between false alarms T with windows of length
    t is ``false_alarm_rate = t / T`` (per feature).

    >>> from infersight.stats.reference import Reference
    >>> ref = Reference.from_data({"x": np.random.default_rng(0).normal(size=5000)}, model="m")
    >>> m = calibrate(PSI(), ref.features["x"], 100, false_alarm_rate=0.01)
    >>> 0.05 < m.threshold < 0.5
    True
    """
    rng = np.random.default_rng(seed)
    method.fit(profile)
    if isinstance(method, (NumericPolicy, CategoricalPolicy)):
        method.alpha = false_alarm_rate
    if profile.categories is not None:
        labels = list(profile.categories)
        p = np.array([profile.categories[k] for k in labels], np.float64)
        draws = rng.multinomial(n_rows, p / p.sum(), size=n_boot)
        null = np.array([method.score_counts(dict(zip(labels, d.tolist()))).statistic for d in draws])
    else:
        ref = num_ref(profile)
        mass = np.diff(ref.knots.F, prepend=0.0)
        draws = rng.multinomial(n_rows, mass / mass.sum(), size=n_boot)
        null = _null_numeric(method, ref, draws)
    q = float(np.quantile(null[np.isfinite(null)], 1 - false_alarm_rate)) if np.isfinite(null).any() else math.inf
    if isinstance(method, (NumericPolicy, CategoricalPolicy)):
        method.threshold = max(method.threshold, q)
    else:
        method.threshold = q
    return method


def _null_numeric(method: Any, ref: NumRef, draws: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Null statistics for bootstrap windows given as counts per reference bin (vectorised)."""
    x, fa = ref.knots.x, ref.knots.F
    n = draws.sum(1, keepdims=True).astype(np.float64)
    fb = np.cumsum(draws, axis=1) / n
    if isinstance(method, KS):
        return np.max(np.abs(fb - fa), axis=1)
    if isinstance(method, (Wasserstein, NumericPolicy)):
        scale = ref.std if ref.std > 0 else 1.0
        return abs_linear_integral(x, fb - fa) / scale
    edges = ref.psi_edges
    idx = np.searchsorted(x, edges)
    p = np.diff(np.concatenate([[0.0], fa[idx], [1.0]]))
    q = np.diff(np.concatenate([np.zeros((fb.shape[0], 1)), fb[:, idx], np.ones((fb.shape[0], 1))], axis=1), axis=1)
    if isinstance(method, PSI):
        return np.array([psi(p, qi) for qi in q])
    return np.array([js(p, qi) for qi in q])
