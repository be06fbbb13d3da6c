"""Drift methods, their registry, and the default drift policy.

Every method follows ``fit(reference) → score(current) → DriftResult`` (:mod:`.base`). Numeric
methods fit on a raw sample (then they equal scipy exactly), a profile's
:class:`NumericSummary` / :class:`FeatureProfile`, or an OTel :class:`ExpHistogram`; they score
a raw sample (:meth:`score`) or a sketch (:meth:`score_sketch`). Categorical methods fit on
counts, a profile or raw values and score raw values or counts (:meth:`score_counts`); counts
are sufficient statistics, so counts and raw values give the same answer. Any method scores a
window summary with ``score_window``.

One module per method or family (``ks``, ``wasserstein``, ``binned``: PSI and Jensen–Shannon,
``categorical``, ``combined``: the default policy's methods, ``label_shift``: BBSE), the
``registry`` of methods by name, the ``policy`` that picks them, ``calibration``, and
``fatigue`` (the false-alarm budget over features and windows).

=====================  ==========================================  ===========  ==========
registered name        statistic                                   threshold    p-value
=====================  ==========================================  ===========  ==========
``ks``                 Kolmogorov–Smirnov D                        D at alpha   yes
``psi``                population stability index, ref. deciles    0.2          no
``jensen_shannon``     JS distance (base 2), deciles / categories  0.1          no
``wasserstein``        W1 / reference std                          0.1          no
``chi2``               Pearson chi² on the 2×K table               chi² at α    yes
``total_variation``    ½ Σ|p - q|                                  0.1          no
``unseen_rate``        share of rows in categories never seen      0.01         no
``ks+wasserstein``     the default for numbers (below)             min_effect   KS
``chi2+cohen_w``       the default for categories (below)          min_effect   yes
``bbse``               label shift (fitted on a confusion matrix)  0.1          chi²
=====================  ==========================================  ===========  ==========

Adding a method is a module with a :class:`~.base.NumericMethod` or
:class:`~.base.CategoricalMethod` subclass and one :func:`~.registry.register` call (below for
the built-in ones, anywhere for others); the policy, ``infersight drift --method`` and the
processor then find it by name.

The default :class:`DriftPolicy` combines significance with effect size so that big windows
do not flag harmless differences: numeric columns drift when the KS test is significant at
``alpha`` *and* the normalised Wasserstein distance is at least ``min_effect``; categorical
columns when a chi-square test (rare categories pooled) is significant *and* Cohen's
w = sqrt(Σ (q-p)²/p) is at least ``min_effect_categorical``. Missing-rate jumps, unseen
categories and constant columns are drift on their own. Each finding carries a cause hint.
How many of those a model may raise on unchanged data, and the persistence an alert needs for
fewer than one false alarm a month (:data:`DEFAULT_PERSISTENCE`), is :mod:`.fatigue`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> KS().fit(rng.normal(size=1000)).score(rng.normal(0.5, 1, 1000)).drift
    True
    >>> from infersight.stats.reference import Reference
    >>> ref = Reference.from_data({"x": rng.normal(size=5000)}, model="m")
    >>> DriftPolicy().evaluate(ref, {"x": rng.normal(size=5000) * 1000})["x"].cause
    'unit_change:x1000'
"""

from __future__ import annotations

from infersight.stats.drift import registry
from infersight.stats.drift.base import CategoricalMethod, DriftMethod, MethodSettings, NumericMethod
from infersight.stats.drift.binned import PSI, JensenShannon
from infersight.stats.drift.calibration import calibrate
from infersight.stats.drift.categorical import ChiSquare, TotalVariation, UnseenRate
from infersight.stats.drift.combined import UNIT_FACTORS, CategoricalPolicy, NumericPolicy
from infersight.stats.drift.fatigue import (
    DEFAULT_PERSISTENCE,
    detection_probability,
    expected_false_alarms,
    persistence_for,
)
from infersight.stats.drift.ks import KS
from infersight.stats.drift.label_shift import BBSE
from infersight.stats.drift.policy import DEFAULT_METHODS, DriftPolicy, explain, rank
from infersight.stats.drift.registry import MethodSpec, register
from infersight.stats.drift.wasserstein import Wasserstein
from infersight.stats.result import DriftResult

__all__ = [
    "DriftResult",
    "DriftMethod",
    "NumericMethod",
    "CategoricalMethod",
    "MethodSettings",
    "MethodSpec",
    "register",
    "registry",
    "KS",
    "PSI",
    "JensenShannon",
    "Wasserstein",
    "ChiSquare",
    "TotalVariation",
    "UnseenRate",
    "NumericPolicy",
    "CategoricalPolicy",
    "DriftPolicy",
    "DEFAULT_METHODS",
    "BBSE",
    "rank",
    "calibrate",
    "explain",
    "UNIT_FACTORS",
    "DEFAULT_PERSISTENCE",
    "expected_false_alarms",
    "persistence_for",
    "detection_probability",
]

_NUM, _CAT = registry.NUMERIC_KINDS, registry.CATEGORICAL_KINDS
register("ks", KS, kinds=_NUM, rule="p_value", description="Kolmogorov–Smirnov D; drift when p < alpha")
register("wasserstein", Wasserstein, kinds=_NUM, description="W1 / reference std; drift when >= threshold (0.1)")
register("psi", PSI, kinds=_NUM, description="population stability index on reference deciles (0.2)")
register(
    "jensen_shannon",
    JensenShannon,
    kinds=_NUM | _CAT,
    description="Jensen–Shannon distance, base 2, on deciles or categories (0.1)",
)
register("chi2", ChiSquare, kinds=_CAT, rule="p_value", description="Pearson chi-square; drift when p < alpha")
register("total_variation", TotalVariation, kinds=_CAT, description="½ Σ|p - q| over categories (0.1)")
register("unseen_rate", UnseenRate, kinds=_CAT, description="share of rows in categories the reference never saw")
register(
    "ks+wasserstein",
    NumericPolicy,
    kinds=_NUM,
    rule="both",
    description="default for numbers: KS p < alpha and W1/std >= min_effect, with cause hints",
)
register(
    "chi2+cohen_w",
    CategoricalPolicy,
    kinds=_CAT,
    rule="both",
    description="default for categories: chi-square p < alpha and Cohen's w >= min_effect, unseen categories",
)
register(
    "bbse",
    BBSE,
    kinds=(),
    rule="both",
    description="label shift from a confusion matrix and predicted-label counts (not per feature)",
)
