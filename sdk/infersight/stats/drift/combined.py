"""The default policy's methods: significance *and* effect size, plus cause hints.

``ks+wasserstein`` for numbers (KS p-value, normalised Wasserstein effect) and
``chi2+cohen_w`` for categories (pooled chi-square Bonferroni-combined with the most-changed
category's test, Cohen's w effect). Significance alone makes every big window flag; effect
alone makes small windows noisy.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> NumericPolicy().fit(rng.normal(size=5000)).score(rng.normal(size=5000) * 1000).cause
    'unit_change:x1000'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats import cdf
from infersight.stats.cdf import KnotsBatch, distances, distances_batch
from infersight.stats.drift._dist import binom_sf, binom_two_sided, kstwo_sf_many
from infersight.stats.drift._samples import NumCur, NumRef
from infersight.stats.drift.base import CategoricalMethod, DriftMethod, MethodSettings, NumericMethod
from infersight.stats.drift.categorical import chi2
from infersight.stats.drift.ks import KS, ks_p
from infersight.stats.drift.wasserstein import Wasserstein
from infersight.stats.result import DriftResult
from infersight.stats.sketch import ExpHistogram

__all__ = ["NumericPolicy", "CategoricalPolicy", "UNIT_FACTORS", "score_windows"]

# Factors a unit mistake multiplies by: months/years, minutes, percent, milli/kilo, seconds/hours...
UNIT_FACTORS = (10, 12, 24, 60, 100, 1000, 3600, 86400, 1_000_000)


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


class NumericPolicy(NumericMethod):
    """KS significance and normalised-Wasserstein effect size, plus cause hints.

    ``statistic`` is W1 / reference std (the effect), ``threshold`` is ``min_effect``,
    ``p_value`` is the KS p-value; drift needs both ``p < alpha`` and ``statistic >= min_effect``.
    """

    name = "ks+wasserstein"

    def __init__(self, alpha: float = 0.001, min_effect: float = 0.1, min_rows: int = 30) -> None:
        super().__init__(min_effect, alpha, min_rows)

    @classmethod
    def from_settings(cls, settings: MethodSettings) -> DriftMethod:
        effect = settings.min_effect if settings.threshold is None else settings.threshold
        return cls(settings.alpha, effect, settings.min_rows)

    @property
    def min_effect(self) -> float:
        return self.threshold

    def _compute(self, ref: NumRef, cur: NumCur) -> DriftResult:
        if ref.sorted is not None and cur.sorted is not None:
            ks_r = KS(alpha=self.alpha)._compute(ref, cur)
            w_r = Wasserstein(self.threshold)._compute(ref, cur)
            d, p_ks, effect = ks_r.statistic, ks_r.p_value, w_r.statistic
            details = {
                "ks": d,
                "wasserstein": w_r.details["distance"],
                "ks_error_bound": ks_r.details["error_bound"],
                "wasserstein_error_bound": w_r.details["error_bound"],
            }
        else:
            # Profiles and sketches: the same numbers as KS and Wasserstein give, from one
            # pass over the two sets of knots (the processor's path, once per feature and window).
            d, d_hi, w, w_lo, w_hi = distances(ref.knots, cur.knots(ref))
            p_ks = ks_p(d, ref.n, cur.n)
            scale = ref.std if ref.std > 0 else 1.0
            effect = w / scale
            details = {
                "ks": d,
                "wasserstein": w,
                "ks_error_bound": d_hi - d,
                "wasserstein_error_bound": max(w_hi - w, w - w_lo, 0.0) / scale,
            }
        assert p_ks is not None
        drift = bool(p_ks < self.alpha and effect >= self.threshold)
        cause = None
        # A constant window has min == max; only then (or when there is drift to explain)
        # are the window's quantiles worth computing.
        constant = (cur.sorted is not None and cur.sorted[0] == cur.sorted[-1]) or (
            cur.sketch is not None and cur.sketch.min == cur.sketch.max
        )
        cur_q = cur.quantiles() if constant or drift else None
        if (
            constant
            and cur_q is not None
            and cur.n >= self.min_rows
            and cur_q[0] == cur_q[-1]
            and ref.quantiles[0] != ref.quantiles[-1]
        ):
            value = cur.sorted[0] if cur.sorted is not None and cur.sorted[0] == cur.sorted[-1] else None
            if cur.sketch is not None and cur.sketch.min == cur.sketch.max:
                value = cur.sketch.min
            # Constant on its own is drift only when n draws from the reference would rarely
            # all be that value (a 0/1 flag that is 1 in 5% of rows is all 0 in many windows).
            if value is not None and cur.n * math.log(max(ref.knots.mass_at_most(float(value)), 1e-300)) < math.log(
                self.alpha
            ):
                drift, cause = True, "constant_column"
        if drift and cause is None and cur_q is not None:
            unit = _unit_factor(ref.quantiles, cur_q)
            cause = f"unit_change:{unit}" if unit else "distribution_shift"
        return DriftResult(self.name, effect, self.threshold, p_ks, drift, cause, ref.n, cur.n, details)


class CategoricalPolicy(CategoricalMethod):
    """Chi-square (categories expected fewer than 5 times pooled) combined (Bonferroni) with
    the most-changed category's two-proportion test, Cohen's w as effect size, plus
    unseen categories.

    The cause follows what drives the statistic: the Pearson chi-square of the table with
    every never-seen category in one column splits into each column's contribution, and
    ``details["unseen_contribution"]`` is the unseen column's share. Drift driven mainly by
    never-seen values (share >= 1/2) is ``unseen_categories`` (a schema or pipeline problem)
    however few rows they are; drift driven by the known categories is
    ``distribution_shift`` even when a few unseen values are present. Never-seen values in
    at least ``max_unseen`` of the rows, significantly more than the reference's resolution
    (1/m) allows, are ``unseen_categories`` and drift on their own, whatever else moved: the
    schema problem is what to check first. ``details["top_categories"]`` lists the largest
    contributors with their shares, ``details["unseen"]`` up to ten never-seen values.

    >>> ref = {"a": 5000, "b": 5000}
    >>> r = CategoricalPolicy().fit(ref).score_counts({"a": 495, "b": 495, "zz": 5})
    >>> r.cause, round(r.details["unseen_contribution"], 2)
    ('unseen_categories', 1.0)
    >>> CategoricalPolicy().fit(ref).score_counts({"a": 650, "b": 340, "zz": 1}).cause
    'distribution_shift'
    """

    name = "chi2+cohen_w"
    # The unseen column's share of the chi-square above which it, not the known categories,
    # is what the drift is made of.
    UNSEEN_DRIVES = 0.5

    def __init__(
        self, alpha: float = 0.001, min_effect: float = 0.05, min_rows: int = 30, max_unseen: float = 0.01
    ) -> None:
        super().__init__(min_effect, alpha, min_rows)
        self.max_unseen = max_unseen

    @classmethod
    def from_settings(cls, settings: MethodSettings) -> DriftMethod:
        effect = settings.min_effect if settings.threshold is None else settings.threshold
        return cls(settings.alpha, effect, settings.min_rows, settings.max_unseen)

    def _compute(self, labels: list[str], r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> DriftResult:
        m, n = r.sum(), c.sum()
        p = r / m
        big = (p * n >= 5) & (r > 0)
        rest_r, rest_c = r[~big].sum(), c[~big].sum()
        rp = np.append(r[big], rest_r) if rest_r + rest_c > 0 else r[big]
        cp = np.append(c[big], rest_c) if rest_r + rest_c > 0 else c[big]
        stat, dof, p_chi2 = chi2(rp, cp)
        # A chi-square with many categories dilutes a change in one of them; a Bonferroni-
        # corrected test per category catches it. Both, Bonferroni-combined. The per-category
        # test is the exact binomial one of the window's count at the pooled share (the
        # conditional test given both totals, made conservative): the normal curve is far
        # too generous for a category expected a few times per window, which made small
        # windows with many categories alarm at several times alpha.
        pooled = (rp + cp) / (m + n)
        p_cat = float(min(1.0, np.min(binom_two_sided(cp, int(n), pooled)) * rp.size)) if rp.size > 1 else 1.0
        pval = min(1.0, 2 * min(p_chi2, p_cat))
        pr = np.maximum(rp / m, 0.5 / m)
        w = float(math.sqrt(np.sum((cp / n - pr) ** 2 / pr)))
        unseen = r == 0
        unseen_rows = float(c[unseen].sum())
        unseen_share = unseen_rows / n
        share, top = _contributions(labels, r, c, big, unseen)
        drift = bool(pval < self.alpha and w >= self.threshold)
        cause = None
        # Unseen categories in at least max_unseen of rows, significantly against the
        # reference's own resolution (1/m), are a schema problem to check first, whatever
        # else moved; below that share the chi-square contributions decide.
        if unseen_share >= self.max_unseen and binom_sf(unseen_rows - 1, int(n), 1.0 / (m + 1)) < self.alpha:
            drift, cause = True, "unseen_categories"
        elif drift:
            cause = "unseen_categories" if share >= self.UNSEEN_DRIVES else "distribution_shift"
        details = {
            "chi2": stat,
            "dof": dof,
            "p_chi2": p_chi2,
            "p_category": p_cat,
            "unseen_share": unseen_share,
            "unseen_contribution": share,
            "unseen": [labels[i] for i in np.flatnonzero(unseen & (c > 0))[:10]],
            "top_categories": top,
        }
        return DriftResult(self.name, w, self.threshold, pval, drift, cause, int(m), int(n), details)


_UNSEEN = "__unseen__"


def _contributions(
    labels: list[str],
    r: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
    big: npt.NDArray[np.bool_],
    unseen: npt.NDArray[np.bool_],
) -> tuple[float, list[tuple[str, float]]]:
    """The unseen column's share of the Pearson chi-square of the 2×K table whose columns are
    the well-filled known categories, the rare known ones pooled (``__other__``), and every
    never-seen category together (``__unseen__``); and the three largest contributors.

    An unseen column of ``u`` current rows contributes ``u · m / n`` (its reference cell is
    empty), so against a big reference even a handful of new values outweighs the noise of
    the known categories, as it should: they are impossible under the reference.
    """
    rare = ~big & ~unseen
    names = [labels[i] for i in np.flatnonzero(big)] + ["__other__", _UNSEEN]
    tr: npt.NDArray[np.float64] = np.concatenate([r[big], [r[rare].sum(), 0.0]])
    tc: npt.NDArray[np.float64] = np.concatenate([c[big], [c[rare].sum(), c[unseen].sum()]])
    tot = tr + tc
    keep = tot > 0
    if keep.sum() < 2:
        return 0.0, []
    tr, tc, tot = tr[keep], tc[keep], tot[keep]
    names = [k for k, kept in zip(names, keep) if kept]
    m, n = tr.sum(), tc.sum()
    er, ec = tot * m / (m + n), tot * n / (m + n)
    contrib = (tr - er) ** 2 / er + (tc - ec) ** 2 / ec
    total = float(contrib.sum())
    if total <= 0:
        return 0.0, []
    shares = contrib / total
    unseen_share = float(shares[names.index(_UNSEEN)]) if _UNSEEN in names else 0.0
    order = np.argsort(-shares, kind="stable")[:3]
    return unseen_share, [(names[i], round(float(shares[i]), 4)) for i in order]


# Sets of knots per batch: large enough to share the numpy calls around the distances; with the
# C merge (one pair at a time, no sweep-wide arrays) a whole model's window, without it small
# enough for the numpy sweep's arrays to stay in the cache.
_BATCH_C = 128
_BATCH = 16


def _batchable(method: Any, sketch: ExpHistogram | None) -> bool:
    """Whether :func:`score_windows` may score this pair in a batch: the default numeric
    method against a profile or sketch reference, a sketch window judged (enough rows,
    finite extremes) and not constant (that cause is looked at one window at a time)."""
    if type(method) is not NumericPolicy or sketch is None:
        return False
    ref = method._ref
    return (
        ref is not None
        and ref.sorted is None
        and ref.n > 0
        and ref.knots.n > 0
        and sketch.count > 0
        and sketch.count >= method.min_rows
        and math.isfinite(sketch.min)
        and math.isfinite(sketch.max)
        and sketch.min != sketch.max
    )


def score_windows(methods: Sequence[Any], windows: Sequence[Any]) -> list[DriftResult]:
    """``methods[i].score_window(windows[i])`` for every ``i``: the same results, with the
    default numeric policy's sketch windows scored in batches (:func:`~infersight.stats.cdf.
    distances_batch`), which is what the processor does for every feature of a window.

    A window the batch does not take (raw values, categories, another method, a constant or
    too small window) and every window the batch finds drifted (its cause is worked out one
    window at a time) goes through ``score_window`` itself.

    >>> import numpy as np
    >>> from infersight.stats.windows import FeatureWindow
    >>> rng = np.random.default_rng(0)
    >>> m = NumericPolicy().fit(ExpHistogram.from_values(rng.normal(size=5000)))
    >>> w = FeatureWindow.from_stats(FeatureWindow.from_column(rng.normal(size=500), "numeric").to_stats())
    >>> score_windows([m], [w]) == [m.score_window(w)]
    True
    """
    if len(methods) != len(windows):
        raise ValueError(f"score_windows pairs methods with windows; got {len(methods)} and {len(windows)}")
    out: list[DriftResult | None] = [None] * len(methods)
    todo: list[int] = []
    for i, (m, w) in enumerate(zip(methods, windows)):
        sketch = w.sketch if getattr(w, "values", None) is None else None
        if _batchable(m, sketch):
            todo.append(i)
        else:
            out[i] = m.score_window(w)
    size = _BATCH_C if cdf._c_knot_distances is not None else _BATCH
    for lo in range(0, len(todo), size):
        part = todo[lo : lo + size]
        refs = [methods[i]._ref for i in part]
        sketches = [windows[i].sketch for i in part]
        try:
            cur = KnotsBatch.from_sketches(sketches)
        except ValueError:  # a sketch whose buckets do not add up: one at a time
            for i in part:
                out[i] = methods[i].score_window(windows[i])
            continue
        try:
            # built per batch (~30 us for 16 sets): kept, every model's batches would double
            # the memory its fitted references take
            dist = distances_batch(KnotsBatch.of([r.knots for r in refs]), cur)
        except ValueError:  # a set of knots too small to batch: one at a time
            for i in part:
                out[i] = methods[i].score_window(windows[i])
            continue
        m_n = np.array([r.n for r in refs], np.int64)
        c_n = cur.n
        en = m_n.astype(np.float64) * c_n / (m_n + c_n)
        p_all = np.clip(kstwo_sf_many(dist[:, 0], np.round(en).astype(np.int64)), 0.0, 1.0)
        rows, p_list, c_list = dist.tolist(), p_all.tolist(), c_n.tolist()  # plain floats and ints at once
        for j, i in enumerate(part):
            method, ref = methods[i], refs[j]
            d, d_hi, w, w_lo, w_hi = rows[j]
            p_ks = p_list[j]
            scale = ref.std if ref.std > 0 else 1.0
            effect = w / scale
            if p_ks < method.alpha and effect >= method.threshold:
                out[i] = method.score_window(windows[i])  # drift: its cause, one window at a time
                continue
            details = {
                "ks": d,
                "wasserstein": w,
                "ks_error_bound": d_hi - d,
                "wasserstein_error_bound": max(w_hi - w, w - w_lo, 0.0) / scale,
            }
            out[i] = DriftResult(method.name, effect, method.threshold, p_ks, False, None, ref.n, c_list[j], details)
    return [r for r in out if r is not None]
