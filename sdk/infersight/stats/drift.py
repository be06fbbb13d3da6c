"""Drift methods and the default drift policy.

Every method follows ``fit(reference) → score(current) → DriftResult``. Numeric methods fit on a
raw sample (then they equal scipy exactly), a profile's :class:`NumericSummary` /
:class:`FeatureProfile`, or an OTel :class:`ExpHistogram`; they score a raw sample
(:meth:`score`) or a sketch (:meth:`score_sketch`). Categorical methods fit on counts, a
profile or raw values and score raw values or counts (:meth:`score_counts`); counts are
sufficient statistics, so counts and raw values give the same answer.

=====================  ==========================================  ===========  ==========
method                 statistic                                   threshold    p-value
=====================  ==========================================  ===========  ==========
``KS``                 Kolmogorov–Smirnov D                        D at alpha   yes
``PSI``                population stability index, ref. deciles    0.2          no
``JensenShannon``      JS distance (base 2), deciles / categories  0.1          no
``Wasserstein``        W1 / reference std                          0.1          no
``ChiSquare``          Pearson chi² on the 2×K table               chi² at α    yes
``TotalVariation``     ½ Σ|p - q|                                  0.1          no
``UnseenRate``         share of rows in categories never seen      0.01         no
=====================  ==========================================  ===========  ==========

The default :class:`DriftPolicy` combines significance with effect size so that big windows
do not flag harmless differences: numeric columns drift when the KS test is significant at
``alpha`` *and* the normalised Wasserstein distance is at least ``min_effect``; categorical
columns when a chi-square test (rare categories pooled) is significant *and* Cohen's
w = sqrt(Σ (q-p)²/p) is at least ``min_effect_categorical``. Missing-rate jumps, unseen
categories and constant columns are drift on their own. Each finding carries a cause hint.

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

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as _st

from infersight.stats.cdf import (
    Knots,
    abs_linear_integral,
    bin_probs,
    ks_bounds,
    wasserstein_bounds,
)
from infersight.stats.cdf import (
    wasserstein as _w_knots,
)
from infersight.stats.reference import (
    N_BINS,
    PSI_LEVELS,
    FeatureProfile,
    NumericSummary,
    Reference,
    category_counts,
    sorted_quantile,
)
from infersight.stats.result import DriftResult
from infersight.stats.sketch import ExpHistogram

__all__ = [
    "DriftResult",
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
    "BBSE",
    "rank",
    "calibrate",
    "explain",
    "UNIT_FACTORS",
]

# Factors a unit mistake multiplies by: months/years, minutes, percent, milli/kilo, seconds/hours...
UNIT_FACTORS = (10, 12, 24, 60, 100, 1000, 3600, 86400, 1_000_000)
_PSI_EPS = 1e-4  # bins empty on one side get this share (the usual PSI smoothing)
_SCIPY_EXACT_N = 10_000  # scipy's ks_2samp 'auto' is exact up to this size


# -- numeric reference / current shapes ---------------------------------------------------


@dataclass
class _NumRef:
    sorted: npt.NDArray[np.float64] | None  # raw path
    knots: Knots
    psi_edges: npt.NDArray[np.float64]
    std: float
    n: int
    quantiles: npt.NDArray[np.float64]  # p05, p25, p50, p75, p95


_HINT_Q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


def _num_ref(reference: Any) -> _NumRef:
    if isinstance(reference, FeatureProfile):
        if reference.numeric is None:
            raise ValueError(f"feature {reference.name!r} is {reference.kind}, not numeric; use a categorical method")
        reference = reference.numeric
    if isinstance(reference, ExpHistogram):
        reference = NumericSummary.from_sketch(reference)
    if isinstance(reference, NumericSummary):
        q = reference.quantiles
        qs = np.array(
            [
                q.get("p05", np.nan),
                q.get("p25", np.nan),
                q.get("p50", np.nan),
                q.get("p75", np.nan),
                q.get("p95", np.nan),
            ]
        )
        return _NumRef(None, reference.knots(), reference.psi_edges, reference.std, reference.count, qs)
    x = np.asarray(reference, dtype=np.float64).ravel()
    xs = np.sort(x[np.isfinite(x)])
    if xs.size == 0:
        raise ValueError("the reference sample has no finite values; profile data with at least one number")
    edges = np.union1d(
        np.unique(sorted_quantile(xs, np.linspace(0, 1, N_BINS + 1))), np.unique(sorted_quantile(xs, PSI_LEVELS))
    )
    return _NumRef(
        xs,
        Knots.from_sorted(xs, edges),
        np.unique(sorted_quantile(xs, PSI_LEVELS)),
        float(xs.std(ddof=1)) if xs.size > 1 else 0.0,
        int(xs.size),
        sorted_quantile(xs, _HINT_Q),
    )


@dataclass
class _NumCur:
    sorted: npt.NDArray[np.float64] | None
    sketch: ExpHistogram | None
    n: int
    _knots: tuple[int, Knots] | None = None

    def knots(self, ref: _NumRef) -> Knots:
        """Exact knots: the sketch's bucket boundaries, or (raw) the ECDF at the reference's
        knots and the sample's own quantiles (and just below each, so jumps are seen)."""
        if self._knots is not None and self._knots[0] == id(ref):
            return self._knots[1]
        if self.sketch is not None:
            k = Knots.from_sketch(self.sketch)
        else:
            assert self.sorted is not None
            own = np.unique(sorted_quantile(self.sorted, np.linspace(0, 1, N_BINS + 1)))
            k = Knots.from_sorted(self.sorted, np.union1d(ref.knots.x, own))
        self._knots = (id(ref), k)
        return k

    def quantiles(self) -> npt.NDArray[np.float64]:
        if self.sketch is not None:
            return np.asarray(self.sketch.quantile(_HINT_Q))
        assert self.sorted is not None
        return sorted_quantile(self.sorted, _HINT_Q)


def _num_cur(current: Any) -> _NumCur:
    if isinstance(current, ExpHistogram):
        return _NumCur(None, current, current.count)
    x = np.asarray(current, dtype=np.float64).ravel()
    xs = np.sort(x[np.isfinite(x)])
    return _NumCur(xs, None, int(xs.size))


def _ks_exact(ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]) -> tuple[float, float]:
    """D and p as scipy.stats.ks_2samp (method='auto'); both inputs sorted."""
    if max(ref.size, cur.size) <= _SCIPY_EXACT_N:
        r = _st.ks_2samp(ref, cur)
        return float(r.statistic), float(r.pvalue)
    allv = np.concatenate([ref, cur])
    d = float(
        np.max(np.abs(np.searchsorted(ref, allv, "right") / ref.size - np.searchsorted(cur, allv, "right") / cur.size))
    )
    return d, _ks_p(d, ref.size, cur.size)


def _ks_p(d: float, m: int, n: int) -> float:
    en = m * n / (m + n)
    return float(np.clip(_st.distributions.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def _ks_crit(alpha: float, m: int, n: int) -> float:
    return _ks_crit_en(alpha, int(np.round(m * n / (m + n))))


@functools.lru_cache(maxsize=4096)
def _ks_crit_en(alpha: float, en: int) -> float:
    # kstwo.isf is a numerical inverse (~1 ms); windows repeat the same sizes, so cache it.
    return float(_st.distributions.kstwo.isf(alpha, en))


def _w_exact(ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]) -> float:
    """W1 of two sorted samples, as scipy.stats.wasserstein_distance computes it."""
    allv = np.sort(np.concatenate([ref, cur]))
    deltas = np.diff(allv)
    fu = np.searchsorted(ref, allv[:-1], "right") / ref.size
    fv = np.searchsorted(cur, allv[:-1], "right") / cur.size
    return float(np.sum(np.abs(fu - fv) * deltas))


def _probs_in_bins(ref: _NumRef, cur: _NumCur) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    edges = ref.psi_edges
    p = bin_probs(ref.knots, edges)
    if cur.sorted is not None:
        c = np.diff(np.concatenate([[0], np.searchsorted(cur.sorted, edges, "right"), [cur.n]])) / max(cur.n, 1)
    else:
        # A decile edge inside a sketch bucket (e.g. an integer atom): the smallest difference
        # the bucket allows, not a guess that spreads the atom over the bucket.
        c = bin_probs(cur.knots(ref), edges, toward=ref.knots.at(edges))
    return p, c


def _js(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """scipy.spatial.distance.jensenshannon(p, q, base=2)."""
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0) / math.log(2)))


def _psi(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    p = np.clip(p, _PSI_EPS, None)
    q = np.clip(q, _PSI_EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


class _Thresholded:
    """Threshold, significance level and minimum window size shared by every method."""

    default_threshold = 0.1

    def __init__(self, threshold: float | None = None, alpha: float = 0.001, min_rows: int = 1) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha!r} must be between 0 and 1, e.g. 0.001")
        self.threshold = self.default_threshold if threshold is None else float(threshold)
        self.alpha = alpha
        self.min_rows = min_rows


class _NumericMethod(_Thresholded):
    """fit on a sample / profile / sketch; score a sample (:meth:`score`) or sketch."""

    name = "numeric"
    _ref: _NumRef | None = None

    def fit(self, reference: Any) -> Any:
        """``reference``: a 1-D sample, a ``FeatureProfile`` / ``NumericSummary``, or an ``ExpHistogram``."""
        self._ref = _num_ref(reference)
        return self

    def score(self, current: npt.ArrayLike) -> DriftResult:
        """Compare a raw 1-D sample (NaN/Inf ignored) with the reference."""
        return self._score(_num_cur(current))

    def score_sketch(self, sketch: ExpHistogram) -> DriftResult:
        """Compare an OTel exponential-histogram sketch of the current window."""
        return self._score(_num_cur(sketch))

    def _score(self, cur: _NumCur) -> DriftResult:
        if self._ref is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(reference) before score()")
        if cur.n < self.min_rows or cur.n == 0:
            return DriftResult(
                self.name, math.nan, self.threshold, None, False, None, self._ref.n, cur.n, {"reason": "too_few_rows"}
            )
        return self._compute(self._ref, cur)

    def _compute(self, ref: _NumRef, cur: _NumCur) -> DriftResult:  # pragma: no cover - abstract
        raise NotImplementedError


class KS(_NumericMethod):
    """Two-sample Kolmogorov–Smirnov; drift when p < ``alpha``. ``threshold`` is the critical D.

    From raw samples D and p equal ``scipy.stats.ks_2samp``; from profiles/sketches D is the
    largest distance the CDF knots prove (``D <= D_exact <= D + details["error_bound"]``, see
    ``infersight.stats.cdf``) and p is the asymptotic one.
    """

    name = "ks"

    def _compute(self, ref: _NumRef, cur: _NumCur) -> DriftResult:
        if ref.sorted is not None and cur.sorted is not None:
            d, p = _ks_exact(ref.sorted, cur.sorted)
            bound = 0.0
        else:
            d, hi = ks_bounds(ref.knots, cur.knots(ref))
            p = _ks_p(d, ref.n, cur.n)
            bound = hi - d
        return DriftResult(
            self.name,
            d,
            _ks_crit(self.alpha, ref.n, cur.n),
            p,
            p < self.alpha,
            None,
            ref.n,
            cur.n,
            {"error_bound": bound},
        )


class Wasserstein(_NumericMethod):
    """W1 divided by the reference standard deviation; drift when >= ``threshold`` (0.1)."""

    name = "wasserstein"

    def _compute(self, ref: _NumRef, cur: _NumCur) -> DriftResult:
        if ref.sorted is not None and cur.sorted is not None:
            w, bound = _w_exact(ref.sorted, cur.sorted), 0.0
        else:
            a, b = ref.knots, cur.knots(ref)
            w = _w_knots(a, b)
            lo, hi = wasserstein_bounds(a, b)
            bound = max(hi - w, w - lo, 0.0)
        scale = ref.std if ref.std > 0 else 1.0
        stat = w / scale
        return DriftResult(
            self.name,
            stat,
            self.threshold,
            None,
            stat >= self.threshold,
            None,
            ref.n,
            cur.n,
            {"distance": w, "error_bound": bound / scale},
        )


class PSI(_NumericMethod):
    """Population stability index on the reference deciles; drift when >= ``threshold`` (0.2)."""

    name = "psi"
    default_threshold = 0.2

    def _compute(self, ref: _NumRef, cur: _NumCur) -> DriftResult:
        p, q = _probs_in_bins(ref, cur)
        stat = _psi(p, q)
        return DriftResult(self.name, stat, self.threshold, None, stat >= self.threshold, None, ref.n, cur.n)


class _Categorical(_Thresholded):
    name = "categorical"
    _ref: dict[str, int] | None = None

    def fit(self, reference: Any) -> Any:
        """``reference``: counts by category, a categorical ``FeatureProfile``, or raw values."""
        self._ref = _counts(reference)
        return self

    def score(self, current: npt.ArrayLike) -> DriftResult:
        """Compare raw values (``None`` is missing and ignored)."""
        return self.score_counts(_counts(current))

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

    def _compute(
        self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]
    ) -> DriftResult:  # pragma: no cover
        raise NotImplementedError


def _counts(obj: Any) -> dict[str, int]:
    if isinstance(obj, FeatureProfile):
        if obj.categories is None:
            raise ValueError(f"feature {obj.name!r} is {obj.kind}, not categorical; use a numeric method")
        return dict(obj.categories)
    if isinstance(obj, Mapping):
        return {str(k): int(v) for k, v in obj.items()}
    arr = np.asarray(obj)
    if arr.dtype.kind == "b":
        return category_counts(arr, "boolean")
    arr = np.asarray(obj, dtype=object).ravel()
    present = (
        arr[np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in arr], bool)]
        if arr.size
        else arr
    )
    return category_counts(present)


def _chi2(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> tuple[float, int, float]:
    """Pearson chi² of the 2×K table [r; c] (= scipy chi2_contingency, correction=False)."""
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    if r.size < 2:
        return 0.0, 0, 1.0
    table = np.vstack([r, c])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = int(r.size - 1)
    return stat, dof, float(_st.chi2.sf(stat, dof))


class ChiSquare(_Categorical):
    """Pearson chi-square on the reference-vs-current table; drift when p < ``alpha``;
    equals ``scipy.stats.chi2_contingency(table, correction=False)``."""

    name = "chi2"

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        stat, dof, p = _chi2(r, c)
        crit = float(_st.chi2.isf(self.alpha, dof)) if dof else math.inf
        return DriftResult(self.name, stat, crit, p, p < self.alpha, None, int(r.sum()), int(c.sum()), {"dof": dof})


class TotalVariation(_Categorical):
    """½ Σ |p - q| over categories; drift when >= ``threshold`` (0.1)."""

    name = "total_variation"

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        stat = float(0.5 * np.abs(r / r.sum() - c / c.sum()).sum())
        return DriftResult(
            self.name, stat, self.threshold, None, stat >= self.threshold, None, int(r.sum()), int(c.sum())
        )


class UnseenRate(_Categorical):
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


class JensenShannon:
    """Jensen–Shannon distance (base 2, in [0, 1]); drift when >= ``threshold`` (0.1).

    Numeric: on the reference deciles; categorical: on the categories. Equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` on those probabilities.
    """

    name = "jensen_shannon"

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = threshold
        self._num: _NumRef | None = None
        self._cat: dict[str, int] | None = None

    def fit(self, reference: Any) -> JensenShannon:
        is_cat = (isinstance(reference, FeatureProfile) and reference.categories is not None) or isinstance(
            reference, Mapping
        )
        if not is_cat and not isinstance(reference, (FeatureProfile, NumericSummary, ExpHistogram)):
            arr = np.asarray(reference)
            is_cat = arr.dtype.kind in "OUSb"
        if is_cat:
            self._cat, self._num = _counts(reference), None
        else:
            self._num, self._cat = _num_ref(reference), None
        return self

    def score(self, current: Any) -> DriftResult:
        if self._cat is not None:
            return self.score_counts(_counts(current))
        return self._numeric(_num_cur(current))

    def score_sketch(self, sketch: ExpHistogram) -> DriftResult:
        return self._numeric(_num_cur(sketch))

    def score_counts(self, counts: Mapping[str, int]) -> DriftResult:
        if self._cat is None:
            raise RuntimeError("JensenShannon was fitted on numbers (or not at all); fit it on categories first")
        labels = list(self._cat) + [k for k in counts if k not in self._cat]
        p = np.array([self._cat.get(k, 0) for k in labels], np.float64)
        q = np.array([counts.get(k, 0) for k in labels], np.float64)
        return self._result(p, q, int(p.sum()), int(q.sum()))

    def _numeric(self, cur: _NumCur) -> DriftResult:
        if self._num is None:
            raise RuntimeError("JensenShannon: call fit(reference) before score()")
        p, q = _probs_in_bins(self._num, cur)
        return self._result(p, q, self._num.n, cur.n)

    def _result(self, p: npt.NDArray[np.float64], q: npt.NDArray[np.float64], m: int, n: int) -> DriftResult:
        if p.sum() == 0 or q.sum() == 0:
            return DriftResult(self.name, math.nan, self.threshold, None, False, None, m, n)
        stat = _js(p, q)
        return DriftResult(self.name, stat, self.threshold, None, stat >= self.threshold, None, m, n)


# -- the default policy ---------------------------------------------------------------------


def _unit_factor(ref_q: npt.NDArray[np.float64], cur_q: npt.NDArray[np.float64], tol: float = 0.1) -> str | None:
    """``x1000`` or ``/60`` when the current quartiles ≈ k × the reference quartiles.

    Quartiles (not the tails) because they are stable at a few thousand rows; the error is
    measured in units of the scaled reference IQR.
    """
    rq, cq = ref_q[1:4], cur_q[1:4]
    iqr = float(rq[-1] - rq[0])
    if not np.all(np.isfinite(rq)) or not np.all(np.isfinite(cq)) or iqr <= 0:
        return None
    best: tuple[float, str] | None = None
    for f in UNIT_FACTORS:
        for k, label in ((float(f), f"x{f}"), (1.0 / f, f"/{f}")):
            err = float(np.max(np.abs(cq - k * rq))) / (k * iqr)
            if err <= tol and (best is None or err < best[0]):
                best = (err, label)
    return None if best is None else best[1]


class NumericPolicy(_NumericMethod):
    """KS significance and normalised-Wasserstein effect size, plus cause hints.

    ``statistic`` is W1 / reference std (the effect), ``threshold`` is ``min_effect``,
    ``p_value`` is the KS p-value; drift needs both ``p < alpha`` and ``statistic >= min_effect``.
    """

    name = "ks+wasserstein"

    def __init__(self, alpha: float = 0.001, min_effect: float = 0.1, min_rows: int = 30) -> None:
        super().__init__(min_effect, alpha, min_rows)

    @property
    def min_effect(self) -> float:
        return self.threshold

    def _compute(self, ref: _NumRef, cur: _NumCur) -> DriftResult:
        ks_r = KS(alpha=self.alpha)._compute(ref, cur)
        w_r = Wasserstein(self.threshold)._compute(ref, cur)
        drift = bool(ks_r.drift and w_r.statistic >= self.threshold)
        details = {
            "ks": ks_r.statistic,
            "wasserstein": w_r.details["distance"],
            "ks_error_bound": ks_r.details["error_bound"],
            "wasserstein_error_bound": w_r.details["error_bound"],
        }
        cause = None
        cur_q = cur.quantiles()
        if cur.n >= self.min_rows and cur_q[0] == cur_q[-1] and ref.quantiles[0] != ref.quantiles[-1]:
            value = cur.sorted[0] if cur.sorted is not None and cur.sorted[0] == cur.sorted[-1] else None
            if cur.sketch is not None and cur.sketch.min == cur.sketch.max:
                value = cur.sketch.min
            # Constant on its own is drift only when n draws from the reference would rarely
            # all be that value (a 0/1 flag that is 1 in 5% of rows is all 0 in many windows).
            if value is not None and cur.n * math.log(max(ref.knots.mass_at_most(float(value)), 1e-300)) < math.log(
                self.alpha
            ):
                drift, cause = True, "constant_column"
        if drift and cause is None:
            unit = _unit_factor(ref.quantiles, cur_q)
            cause = f"unit_change:{unit}" if unit else "distribution_shift"
        return DriftResult(self.name, w_r.statistic, self.threshold, ks_r.p_value, drift, cause, ref.n, cur.n, details)


class CategoricalPolicy(_Categorical):
    """Chi-square (categories expected fewer than 5 times pooled) combined (Bonferroni) with
    the most-changed category's two-proportion test, Cohen's w as effect size, plus
    unseen categories (drift on their own when >= ``max_unseen`` of rows, significantly)."""

    name = "chi2+cohen_w"

    def __init__(
        self, alpha: float = 0.001, min_effect: float = 0.05, min_rows: int = 30, max_unseen: float = 0.01
    ) -> None:
        super().__init__(min_effect, alpha, min_rows)
        self.max_unseen = max_unseen

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        m, n = r.sum(), c.sum()
        p = r / m
        big = (p * n >= 5) & (r > 0)
        rest_r, rest_c = r[~big].sum(), c[~big].sum()
        rp = np.append(r[big], rest_r) if rest_r + rest_c > 0 else r[big]
        cp = np.append(c[big], rest_c) if rest_r + rest_c > 0 else c[big]
        stat, dof, p_chi2 = _chi2(rp, cp)
        # A chi-square with many categories dilutes a change in one of them; a Bonferroni-
        # corrected two-proportion test per category catches it. Both, Bonferroni-combined.
        pooled = (rp + cp) / (m + n)
        se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / m + 1 / n), 1e-300))
        p_cat = float(min(1.0, np.min(2 * _st.norm.sf(np.abs(cp / n - rp / m) / se)) * rp.size)) if rp.size > 1 else 1.0
        pval = min(1.0, 2 * min(p_chi2, p_cat))
        pr = np.maximum(rp / m, 0.5 / m)
        w = float(math.sqrt(np.sum((cp / n - pr) ** 2 / pr)))
        unseen_share = float(c[r == 0].sum() / n)
        drift = bool(pval < self.alpha and w >= self.threshold)
        cause = None
        # Unseen categories: significant against the reference's own resolution (1/m).
        if unseen_share >= self.max_unseen and _st.binom.sf(c[r == 0].sum() - 1, int(n), 1.0 / (m + 1)) < self.alpha:
            drift, cause = True, "unseen_categories"
        elif drift:
            cause = "distribution_shift"
        details = {"chi2": stat, "dof": dof, "p_chi2": p_chi2, "p_category": p_cat, "unseen_share": unseen_share}
        return DriftResult(self.name, w, self.threshold, pval, drift, cause, int(m), int(n), details)


def _missing_jump(
    ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int, alpha: float, min_jump: float
) -> bool:
    """A significant rise of the missing rate by at least ``min_jump`` (two-proportion test)."""
    if cur_rows == 0 or ref_rows == 0:
        return False
    p0, p1 = ref_missing / ref_rows, cur_missing / cur_rows
    if p1 - p0 < min_jump:
        return False
    pooled = (ref_missing + cur_missing) / (ref_rows + cur_rows)
    se = math.sqrt(max(pooled * (1 - pooled) * (1 / ref_rows + 1 / cur_rows), 1e-300))
    return bool(_st.norm.sf((p1 - p0) / se) < alpha)


@dataclass
class DriftPolicy:
    """Which method per column and when to call it drift; overrides per feature.

    >>> policy = DriftPolicy(alpha=0.001, overrides={"price": {"min_effect": 0.3}})
    >>> policy.method_for(FeatureProfile("price", "numeric", 10)).min_effect
    0.3
    """

    alpha: float = 0.001
    min_effect: float = 0.1
    min_effect_categorical: float = 0.05
    min_rows: int = 30
    min_missing_jump: float = 0.02
    max_unseen: float = 0.01
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)

    def method_for(self, profile: FeatureProfile) -> Any:
        """The fitted-to-be method for a feature profile (numeric / text / array → numeric)."""
        o = self.overrides.get(profile.name, {})
        alpha = o.get("alpha", self.alpha)
        if profile.kind in ("categorical", "boolean"):
            return CategoricalPolicy(
                alpha,
                o.get("min_effect", self.min_effect_categorical),
                int(o.get("min_rows", self.min_rows)),
                o.get("max_unseen", self.max_unseen),
            )
        return NumericPolicy(alpha, o.get("min_effect", self.min_effect), int(o.get("min_rows", self.min_rows)))

    def evaluate(
        self,
        reference: Reference,
        current: Any,
        *,
        columns: Sequence[str] | None = None,
        multivariate: bool = False,
    ) -> dict[str, DriftResult]:
        """Drift per feature of ``current`` (columns, a table, or a ``WindowSummary``).

        Columns in the reference but absent from ``current`` are skipped. With
        ``multivariate=True`` and raw columns, an ``"__multivariate__"`` MMD result is added.
        """
        from infersight.stats.windows import WindowSummary

        kinds = {k: f.kind for k, f in reference.features.items()}
        summary = (
            current
            if isinstance(current, WindowSummary)
            else WindowSummary.from_columns(current, kinds=kinds, keep_values=True)
        )
        names = [c for c in (columns or reference.features) if c in reference.features and c in summary.features]
        out: dict[str, DriftResult] = {}
        for name in names:
            prof = reference.features[name]
            if prof.kind == "timestamp":
                continue
            out[name] = self.score_feature(prof, summary.features[name])
        if multivariate and reference.multivariate and summary.values:
            from infersight.stats.multivariate import MMD

            out["__multivariate__"] = MMD(alpha=max(self.alpha, 0.01)).fit(reference).score(summary.values)
        return out

    def score_feature(self, profile: FeatureProfile, window: Any) -> DriftResult:
        """One feature: ``window`` is a ``windows.FeatureWindow`` (sketch or counts + missing)."""
        method = self.method_for(profile).fit(profile)
        o = self.overrides.get(profile.name, {})
        if profile.kind in ("categorical", "boolean"):
            res = method.score_counts(window.categories or {})
        elif window.values is not None:
            res = method.score(window.values)
        else:
            res = method.score_sketch(window.sketch if window.sketch is not None else ExpHistogram())
        ref_missing = sum(v for k, v in profile.missing.items() if k != "inf")
        cur_missing = sum(v for k, v in window.missing.items() if k != "inf")
        if res.cause not in ("constant_column", "unseen_categories") and _missing_jump(
            ref_missing,
            profile.rows,
            cur_missing,
            window.rows,
            o.get("alpha", self.alpha),
            o.get("min_missing_jump", self.min_missing_jump),
        ):
            res = replace(
                res,
                drift=True,
                cause="missing_rate_jump",
                details={**res.details, "missing_rate": cur_missing / max(window.rows, 1)},
            )
        return res


# Methods that need both significance (p < alpha) and an effect of at least ``threshold``;
# the others decide on the p-value when they have one (KS, chi-square, MMD), else on the statistic.
_BOTH_RULES = ("ks+wasserstein", "chi2+cohen_w", "bbse")


def explain(result: DriftResult, alpha: float | None = None, min_rows: int | None = None) -> str:
    """Why ``result`` is drift or not, in the quantities that decided it.

    The policy calls drift only when the test is significant *and* the effect is big enough;
    a table showing ``statistic 0.07 > threshold 0.05 ... ok`` leaves the reader guessing that
    the p-value was the reason. For an ``ok`` this names the condition(s) that failed, for a
    drift the ones that held (or the finding that is drift on its own). ``alpha`` is the
    significance level the method used; ``min_rows`` the policy's floor for judging at all.

    >>> explain(DriftResult("ks+wasserstein", 0.03, 0.1, 1e-6, False), alpha=0.001)
    'effect 0.03 < min 0.1'
    >>> explain(DriftResult("chi2+cohen_w", 0.07, 0.05, 0.02, False), alpha=0.001)
    'p 0.02 >= alpha 0.001'
    """
    d, n = result.details, result.n_current
    if result.drift and result.cause == "missing_rate_jump":
        rate = d.get("missing_rate")
        return "missing rate rose significantly" + (f" to {rate:.1%}" if rate is not None else "")
    if result.drift and result.cause == "unseen_categories":
        share = d.get("unseen_share")
        return "values the reference never saw" + (f" in {share:.1%} of rows" if share is not None else "")
    if result.drift and result.cause == "constant_column":
        return "every row holds the same value, which the reference rarely has"
    if result.cause == "feature_missing":
        return "the column is not in the data"
    if not math.isfinite(result.statistic):
        if n == 0:
            return "not judged: no values"
        return f"not judged: {n} rows" + (f" < min {min_rows}" if min_rows and n < min_rows else ", too few")
    p, stat, thr = result.p_value, result.statistic, result.threshold
    checks: list[tuple[bool, str]] = []
    if p is not None and alpha is not None:
        sig = p < alpha
        checks.append((sig, f"p {p:.2g} {'<' if sig else '>='} alpha {alpha:g}"))
    if result.method in _BOTH_RULES:
        big = stat >= thr
        checks.append((big, f"effect {stat:.3g} {'>=' if big else '<'} min {thr:g}"))
    elif not checks:  # methods without a test decide on the statistic alone
        past = stat >= thr
        checks.append((past, f"statistic {stat:.3g} {'>=' if past else '<'} threshold {thr:.3g}"))
    shown = [text for held, text in checks if held == result.drift] or [text for _, text in checks]
    return ", ".join(shown)


# -- label shift, ranking, calibration ---------------------------------------------------------


class BBSE:
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

    def __init__(self, threshold: float = 0.1, alpha: float = 0.001) -> None:
        self.threshold, self.alpha = threshold, alpha

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
        return self.score_counts(_counts(predictions))

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
        _, _, p = _chi2(self._pred * self._n, q * n)
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


def rank(results: Mapping[str, DriftResult], importance: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """Features by drift severity (statistic / threshold, × importance), drifted ones first.

    >>> rank({"a": DriftResult("psi", 0.1, 0.2, None, False), "b": DriftResult("psi", 0.5, 0.2, None, True)})
    [('b', 2.5), ('a', 0.5)]
    """
    imp = importance or {}
    scored = [(k, r.severity * float(imp.get(k, 1.0)), r.drift) for k, r in results.items()]
    scored.sort(key=lambda t: (not t[2], -t[1], t[0]))
    return [(k, s) for k, s, _ in scored]


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
        ref = _num_ref(profile)
        mass = np.diff(ref.knots.F, prepend=0.0)
        draws = rng.multinomial(n_rows, mass / mass.sum(), size=n_boot)
        null = _null_numeric(method, ref, draws)
    q = float(np.quantile(null[np.isfinite(null)], 1 - false_alarm_rate)) if np.isfinite(null).any() else math.inf
    if isinstance(method, (NumericPolicy, CategoricalPolicy)):
        method.threshold = max(method.threshold, q)
    else:
        method.threshold = q
    return method


def _null_numeric(method: Any, ref: _NumRef, draws: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
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
        return np.array([_psi(p, qi) for qi in q])
    return np.array([_js(p, qi) for qi in q])
