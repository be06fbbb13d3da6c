"""Drift methods equal scipy on raw samples, stay within documented bounds on sketches and
profiles, and the default policy flags real changes (with the right cause) but not noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from infersight.stats.drift import (
    BBSE,
    KS,
    PSI,
    ChiSquare,
    DriftPolicy,
    JensenShannon,
    TotalVariation,
    UnseenRate,
    Wasserstein,
    calibrate,
    rank,
)
from infersight.stats.multivariate import MMD
from infersight.stats.reference import Confusion, Reference
from infersight.stats.sketch import ExpHistogram

RNG = np.random.default_rng(42)


@pytest.mark.parametrize("n,m", [(50, 80), (3000, 5000), (20000, 12000)])
def test_raw_ks_and_wasserstein_equal_scipy(n, m):
    a, b = RNG.normal(size=n), RNG.normal(0.1, 1.2, size=m)
    r = KS().fit(a).score(b)
    ref = stats.ks_2samp(a, b)
    assert abs(r.statistic - ref.statistic) <= 1e-9 and abs(r.p_value - ref.pvalue) <= 1e-9
    w = Wasserstein().fit(a).score(b)
    assert abs(w.details["distance"] - stats.wasserstein_distance(a, b)) <= 1e-9
    assert abs(w.statistic - stats.wasserstein_distance(a, b) / a.std(ddof=1)) <= 1e-9


def test_raw_jensen_shannon_and_psi_equal_their_definitions():
    a, b = RNG.lognormal(size=4000), RNG.lognormal(0.2, 1, size=3000)
    edges = np.quantile(a, np.arange(1, 10) / 10)
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    p = np.array([((a > lo) & (a <= hi)).sum() for lo, hi in zip(bins[:-1], bins[1:])]) / a.size
    q = np.array([((b > lo) & (b <= hi)).sum() for lo, hi in zip(bins[:-1], bins[1:])]) / b.size
    assert abs(JensenShannon().fit(a).score(b).statistic - jensenshannon(p, q, base=2)) <= 1e-9
    pc, qc = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    assert abs(PSI().fit(a).score(b).statistic - np.sum((qc - pc) * np.log(qc / pc))) <= 1e-9


def test_categorical_methods_equal_scipy_and_counts_equal_raw():
    levels = np.array([f"c{i}" for i in range(8)], dtype=object)
    a = RNG.choice(levels, 5000, p=np.linspace(1, 2, 8) / np.linspace(1, 2, 8).sum())
    b = np.concatenate([RNG.choice(levels, 3000), np.array(["new"] * 40, dtype=object)])
    labels = list(levels) + ["new"]
    table = np.array([[np.sum(a == k) for k in labels], [np.sum(b == k) for k in labels]])
    r = ChiSquare().fit(a).score(b)
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert abs(r.statistic - chi2) <= 1e-9 * chi2 and abs(r.p_value - p) <= 1e-9 and r.details["dof"] == dof
    pa, pb = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert abs(JensenShannon().fit(a).score(b).statistic - jensenshannon(pa, pb, base=2)) <= 1e-9
    assert abs(TotalVariation().fit(a).score(b).statistic - 0.5 * np.abs(pa - pb).sum()) <= 1e-12
    u = UnseenRate().fit(a).score(b)
    assert u.statistic == pytest.approx(40 / 3040) and u.drift and u.details["unseen"] == ["new"]
    counts = {k: int(np.sum(b == k)) for k in labels}
    assert ChiSquare().fit(a).score_counts(counts) == r


@pytest.mark.parametrize("dist", ["normal", "lognormal", "mixed_sign"])
def test_sketch_and_profile_results_stay_within_documented_bounds(dist):
    gen = {
        "normal": lambda n, s: RNG.normal(s, 1, n),
        "lognormal": lambda n, s: RNG.lognormal(s, 1, n),
        "mixed_sign": lambda n, s: np.concatenate([RNG.normal(s, 1, n // 2) * 50, np.zeros(n // 10)]),
    }[dist]
    a, b = gen(20000, 0.0), gen(6000, 0.15)
    exact_d = stats.ks_2samp(a, b).statistic
    exact_w = stats.wasserstein_distance(a, b)
    prof = Reference.from_data({"x": a}, model="m", multivariate=False).features["x"]
    for fitted, current in [
        (prof, b),  # profile vs raw
        (prof, ExpHistogram.from_values(b)),  # profile vs sketch (the processor's case)
        (ExpHistogram.from_values(a), ExpHistogram.from_values(b)),  # two sketches (past window)
    ]:
        score = (
            (lambda m, c=current: m.score_sketch(c))
            if isinstance(current, ExpHistogram)
            else (lambda m, c=current: m.score(c))
        )
        k = score(KS().fit(fitted))
        assert abs(k.statistic - exact_d) <= k.details["error_bound"] + 1e-12
        w = score(Wasserstein().fit(fitted))
        scale = a.std(ddof=1) if not isinstance(fitted, ExpHistogram) else w.details["distance"] / w.statistic
        assert abs(w.details["distance"] - exact_w) <= w.details["error_bound"] * scale + 1e-9


def _policy_ref(n=50000, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.zipf(1.6, n * 3)
    cats = np.array([f"k{i}" for i in z[z <= 50][:n]], dtype=object)
    data = {"norm": rng.normal(10, 2, n), "logn": rng.lognormal(1, 0.8, n), "cat": cats}
    return Reference.from_data(data, model="m", multivariate=False), data


REF, REF_DATA = _policy_ref()


def _window(n, seed, **changes):
    rng = np.random.default_rng(seed)
    cats = np.array(list(REF.features["cat"].categories), dtype=object)
    p = np.array(list(REF.features["cat"].categories.values()), float)
    p /= p.sum()
    cur = {"norm": rng.normal(10, 2, n), "logn": rng.lognormal(1, 0.8, n), "cat": rng.choice(cats, n, p=p)}
    for k, f in changes.items():
        cur[k] = f(cur[k], rng)
    return cur


def test_policy_is_quiet_on_null_windows_and_catches_the_quality_bar_shifts():
    policy = DriftPolicy()
    alarms = sum(r.drift for s in range(20) for r in policy.evaluate(REF, _window(5000, s)).values())
    assert alarms == 0
    top = max(REF.features["cat"].categories, key=REF.features["cat"].categories.get)

    def boost_top(c, rng):  # one category's share up by 20% (relative), others scaled down
        p_top = np.mean(c == top)
        others = np.flatnonzero(c != top)
        flip = rng.choice(others, int(round(0.2 * p_top * c.size)), replace=False)
        c = c.copy()
        c[flip] = top
        return c

    for change, feature in [
        ({"norm": lambda x, rng: x + 0.2 * 2}, "norm"),  # 0.2 sigma mean shift
        ({"logn": lambda x, rng: x * 2}, "logn"),  # 2x scale change
        ({"cat": boost_top}, "cat"),
    ]:
        hits = sum(policy.evaluate(REF, _window(5000, 100 + s, **change))[feature].drift for s in range(20))
        assert hits == 20, (feature, hits)


def test_big_windows_do_not_flag_harmless_differences():
    # 0.05 sigma shift at 1M rows: KS is hugely significant, the effect is not worth an alert.
    cur = {"norm": np.random.default_rng(5).normal(10 + 0.1, 2, 1_000_000)}
    r = DriftPolicy().evaluate(REF, cur)["norm"]
    assert r.p_value < 1e-6 and not r.drift


@pytest.mark.parametrize(
    "change,feature,cause",
    [
        ({"norm": lambda x, rng: x * 1000}, "norm", "unit_change:x1000"),
        ({"logn": lambda x, rng: x / 60}, "logn", "unit_change:/60"),
        ({"norm": lambda x, rng: x * 12}, "norm", "unit_change:x12"),
        ({"norm": lambda x, rng: np.where(rng.random(x.size) < 0.1, np.nan, x)}, "norm", "missing_rate_jump"),
        ({"norm": lambda x, rng: np.zeros_like(x)}, "norm", "constant_column"),
        (
            {"cat": lambda c, rng: np.where(rng.random(c.size) < 0.05, "brand_new", c).astype(object)},
            "cat",
            "unseen_categories",
        ),
        ({"norm": lambda x, rng: x + 3}, "norm", "distribution_shift"),
    ],
)
def test_cause_hints(change, feature, cause):
    r = DriftPolicy().evaluate(REF, _window(5000, 7, **change))[feature]
    assert r.drift and r.cause == cause


def test_policy_on_window_sketches_matches_raw_verdicts():
    from infersight.stats.windows import WindowSummary

    kinds = {k: f.kind for k, f in REF.features.items()}
    for change in ({}, {"norm": lambda x, rng: x * 1000}, {"logn": lambda x, rng: x * 2}):
        cur = _window(5000, 11, **change)
        raw = DriftPolicy().evaluate(REF, cur)
        sk = DriftPolicy().evaluate(REF, WindowSummary.from_columns(cur, kinds=kinds))
        assert {k: (r.drift, r.cause) for k, r in raw.items()} == {k: (r.drift, r.cause) for k, r in sk.items()}


def test_overrides_and_ranking():
    cur = _window(5000, 3, norm=lambda x, rng: x + 0.4, logn=lambda x, rng: x * 2)
    res = DriftPolicy(overrides={"norm": {"min_effect": 0.5}}).evaluate(REF, cur)
    assert not res["norm"].drift and res["logn"].drift
    order = rank(res, importance={"cat": 100.0})
    assert order[0][0] == "logn"
    assert rank(res)[0] == ("logn", pytest.approx(res["logn"].statistic / 0.1))


def test_calibration_hits_the_target_false_alarm_rate():
    prof = REF.features["norm"]
    m = calibrate(PSI(), prof, 200, false_alarm_rate=0.05, n_boot=4000, seed=1)
    rng = np.random.default_rng(9)
    rate = np.mean([m.score(rng.normal(10, 2, 200)).statistic > m.threshold for _ in range(600)])
    assert 0.02 <= rate <= 0.09


def test_bbse_recovers_shifted_label_prior():
    rng = np.random.default_rng(3)
    y = rng.choice(["a", "b", "c"], 20000, p=[0.6, 0.3, 0.1])
    noise = rng.random(y.size) < 0.2
    pred = np.where(noise, rng.choice(["a", "b", "c"], y.size), y)
    est = BBSE().fit(Confusion.from_labels(pred, y))
    y2 = rng.choice(["a", "b", "c"], 20000, p=[0.2, 0.3, 0.5])
    noise2 = rng.random(y2.size) < 0.2
    pred2 = np.where(noise2, rng.choice(["a", "b", "c"], y2.size), y2)
    r = est.score(pred2)
    assert r.drift and r.cause == "label_shift"
    assert r.details["estimated"] == pytest.approx({"a": 0.2, "b": 0.3, "c": 0.5}, abs=0.03)
    same = est.score(
        np.where(noise, rng.choice(["a", "b", "c"], y.size), rng.choice(["a", "b", "c"], 20000, p=[0.6, 0.3, 0.1]))
    )
    assert not same.drift


def test_mmd_sees_a_correlation_flip_the_marginals_hide():
    rng = np.random.default_rng(0)
    cov = [[1, 0.9], [0.9, 1]]
    ref = rng.multivariate_normal([0, 0], cov, 5000)
    reference = Reference.from_data({"a": ref[:, 0], "b": ref[:, 1]}, model="m")
    mmd = MMD().fit(reference)
    same = rng.multivariate_normal([0, 0], cov, 1000)
    flip = rng.multivariate_normal([0, 0], [[1, -0.9], [-0.9, 1]], 1000)
    assert not mmd.score({"a": same[:, 0], "b": same[:, 1]}).drift
    r = mmd.score({"a": flip[:, 0], "b": flip[:, 1]})
    assert r.drift and r.p_value < 0.01
    marg = DriftPolicy().evaluate(reference, {"a": flip[:, 0], "b": flip[:, 1]})
    assert not any(x.drift for x in marg.values())


def test_methods_say_what_is_wrong():
    with pytest.raises(RuntimeError, match="fit"):
        KS().score([1.0])
    with pytest.raises(ValueError, match="alpha"):
        KS(alpha=2)
    with pytest.raises(ValueError, match="not numeric"):
        KS().fit(REF.features["cat"])
