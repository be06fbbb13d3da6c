"""A drift method is one module plus one registration: registered here, in the test, it works
by name in the policy (per kind and per feature) and in `infersight drift --method`; and the
distribution functions that replaced `scipy.stats` equal it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from infersight.cli import main
from infersight.stats.drift import DriftPolicy, DriftResult, NumericMethod, explain, register, registry
from infersight.stats.drift._dist import binom_sf, chi2_isf, chi2_sf, kstwo_isf, kstwo_sf, norm_sf
from infersight.stats.reference import FeatureProfile, Reference


class MedianShift(NumericMethod):
    """|median(current) - median(reference)| / reference std; drift when >= threshold."""

    name = "median_shift"
    default_threshold = 0.25

    def _compute(self, ref, cur):
        stat = abs(float(cur.quantiles()[2] - ref.quantiles[2])) / (ref.std or 1.0)
        return DriftResult(self.name, stat, self.threshold, None, stat >= self.threshold, None, ref.n, cur.n)


@pytest.fixture
def median_shift():
    register("median_shift", MedianShift, kinds=registry.NUMERIC_KINDS, description="median moved, in stds")
    yield
    registry.unregister("median_shift")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)

    def write(path, n, shift):
        x = rng.normal(0, 1, n) + shift
        y = rng.normal(5, 2, n)
        plan = rng.choice(["free", "pro"], n)
        lines = ["x,y,plan"] + [f"{a:.6f},{b:.6f},{c}" for a, b, c in zip(x, y, plan)]
        path.write_text("\n".join(lines) + "\n")

    write(tmp_path / "train.csv", 4000, 0.0)
    write(tmp_path / "live.csv", 2000, 1.0)
    ref = tmp_path / "ref.json"
    assert main(["profile", str(tmp_path / "train.csv"), "--model", "m", "-o", str(ref)]) == 0
    return ref, tmp_path / "live.csv"


def test_a_method_registered_in_a_test_works_in_the_policy_by_kind_and_by_feature(median_shift):
    rng = np.random.default_rng(1)
    ref = Reference.from_data({"x": rng.normal(size=5000), "y": rng.normal(size=5000)}, model="m")
    window = {"x": rng.normal(1.0, 1, 3000), "y": rng.normal(size=3000)}
    by_kind = DriftPolicy(methods={"numeric": "median_shift"}).evaluate(ref, window)
    assert {r.method for r in by_kind.values()} == {"median_shift"}
    assert by_kind["x"].drift and not by_kind["y"].drift
    by_feature = DriftPolicy(overrides={"x": {"method": "median_shift", "threshold": 2.0}}).evaluate(ref, window)
    assert by_feature["x"].method == "median_shift" and by_feature["x"].threshold == 2.0
    assert not by_feature["x"].drift  # the per-feature threshold reached the method
    assert by_feature["y"].method == "ks+wasserstein"
    assert explain(by_kind["x"]) == f"statistic {by_kind['x'].statistic:.3g} >= threshold 0.25"
    # the window also scores from its sketch (what the processor holds)
    from infersight.stats.windows import WindowSummary

    sketched = WindowSummary.from_columns(window, kinds={"x": "numeric", "y": "numeric"})
    assert DriftPolicy(methods={"numeric": "median_shift"}).evaluate(ref, sketched)["x"].drift


def test_a_registered_method_works_through_the_cli(median_shift, files, capsys):
    ref, live = files
    code = main(["drift", str(ref), str(live), "--method", "median_shift", "--format", "json", "--no-multivariate"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    feats = report["windows"][0]["features"]
    assert feats["x"]["method"] == "median_shift" and feats["x"]["drift"]
    assert feats["y"]["method"] == "median_shift" and not feats["y"]["drift"]
    assert feats["plan"]["method"] == "chi2+cohen_w"  # a numeric method leaves categories alone
    code = main(["drift", str(ref), str(live), "--method", "x=median_shift", "--method", "plan=total_variation",
                 "--format", "json", "--no-multivariate"])  # fmt: skip
    feats = json.loads(capsys.readouterr().out)["windows"][0]["features"]
    assert (feats["x"]["method"], feats["y"]["method"], feats["plan"]["method"]) == (
        "median_shift",
        "ks+wasserstein",
        "total_variation",
    )


def test_unknown_or_misfitting_methods_are_refused_with_the_names_that_fit(files, capsys):
    ref, live = files
    assert main(["drift", str(ref), str(live), "--method", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no drift method named 'nope'" in err and "ks+wasserstein" in err
    assert main(["drift", str(ref), str(live), "--method", "plan=ks"]) == 2
    err = capsys.readouterr().err
    assert "'ks' applies to" in err and "chi2+cohen_w" in err
    with pytest.raises(KeyError, match="no drift method named"):
        DriftPolicy(overrides={"x": {"method": "psy"}})
    with pytest.raises(ValueError, match="not categorical"):
        DriftPolicy(methods={"categorical": "psi"}).method_for(FeatureProfile("c", "categorical", 10))


def test_a_taken_name_is_refused_unless_replaced(median_shift):
    with pytest.raises(ValueError, match="already registered"):
        register("median_shift", MedianShift, kinds=["numeric"])
    assert register("median_shift", MedianShift, kinds=["numeric"], replace=True).kinds == {"numeric"}


def test_distribution_functions_equal_scipy_stats():
    # The two-sided KS distribution is ours (kstwo_sf's docstring): in the tail, where tests
    # decide, within 1e-4 of scipy's exact value relatively; above it within 0.03.
    for n in (1, 2, 7, 30, 140, 141, 999, 4545, 20_000, 100_001):
        for d in (0.0, 1e-4, 0.003, 0.01, 0.03, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
            exact, ours = stats.kstwo.sf(d, n), kstwo_sf(d, n)
            if exact < 0.1:
                assert ours == pytest.approx(exact, rel=1e-4, abs=1e-300), (d, n)
            elif n >= 5:  # windows hold at least 30 rows: the effective size is never this small
                assert abs(ours - exact) <= 0.03, (d, n)
            else:
                assert ours >= 0.1, (d, n)  # tiny n: rough above the tail, but never a decision
        for a in (1e-6, 0.001, 0.01, 0.05):
            # rel 1e-3: past n = 140 scipy's own kstwo is an asymptotic (Pelz-Good) approximation
            assert kstwo_isf(a, n) == pytest.approx(stats.kstwo.isf(a, n), rel=1e-3), (a, n)
            assert kstwo_sf(kstwo_isf(a, n), n) == pytest.approx(a, rel=1e-9), (a, n)
    for df in (1, 3, 10, 50):
        for x in (0.0, 0.5, 3.0, 20.0, 200.0):
            assert abs(chi2_sf(x, df) - stats.chi2.sf(x, df)) <= 1e-15
        assert abs(chi2_isf(0.001, df) - stats.chi2.isf(0.001, df)) <= 1e-12
    xs = np.array([-3.0, 0.0, 1.96, 8.0])
    assert np.array_equal(norm_sf(xs), stats.norm.sf(xs))
    for k in (-1, 0, 3, 50, 100, 150):
        assert binom_sf(k, 100, 0.03) == stats.binom.sf(k, 100, 0.03)
