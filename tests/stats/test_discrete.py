"""Features with atoms (counts, small integers, rounded prices, 0/1 flags, clip bounds,
constants) scored from raw values and from OTel sketches: quiet on healthy windows, loud on
real shifts, and the CDF error bounds stay true."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from infersight.stats.cdf import Knots, below
from infersight.stats.drift import KS, PSI, DriftPolicy, JensenShannon, Wasserstein
from infersight.stats.reference import FORMAT_VERSION, MAX_ATOMS, Reference
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import FeatureWindow, WindowSummary

CLIP_30 = float(stats.norm.ppf(0.3))  # max(N(0,1), bound): 30% of the values sit at the bound
CLIP_60 = float(stats.norm.ppf(0.6))


def _draw(kind: str, n: int, rng: np.random.Generator, shifted: bool = False) -> np.ndarray:
    if kind == "poisson":
        return rng.poisson(2.5 if shifted else 1.5, n).astype(float)
    if kind == "int0_5":
        p = [0.1, 0.1, 0.1, 0.2, 0.25, 0.25] if shifted else [1 / 6] * 6
        return rng.choice(6, n, p=p).astype(float)
    if kind == "price":  # rounded to cents
        return np.round(rng.lognormal(2.8 if shifted else 2.5, 0.6, n), 2)
    if kind == "flag01":
        return (rng.random(n) < (0.45 if shifted else 0.3)).astype(float)
    if kind == "clip":
        return np.maximum(rng.normal(0, 1, n), CLIP_60 if shifted else CLIP_30)
    if kind == "constant":
        return np.where(rng.random(n) < 0.3, 8.0, 7.0) if shifted else np.full(n, 7.0)
    if kind == "negative_int":
        return rng.integers(-3, 4, n).astype(float) + (1.0 if shifted else 0.0)
    raise AssertionError(kind)


KINDS = ["poisson", "int0_5", "price", "flag01", "clip", "constant", "negative_int"]
RNG = np.random.default_rng(2024)
REF_DATA = {k: _draw(k, 20000, RNG) for k in KINDS}
REF = Reference.from_data(REF_DATA, model="m", multivariate=False)


def _window(values: np.ndarray, as_sketch: bool) -> FeatureWindow:
    if as_sketch:
        return FeatureWindow("numeric", values.size, {}, sketch=ExpHistogram.from_values(values))
    return FeatureWindow("numeric", values.size, {}, values=values)


def test_the_reported_false_alarm_is_gone():
    rng = np.random.default_rng(1)
    ref = Reference.from_data({"c": rng.poisson(1.5, 20000).astype(int).tolist()}, model="m")
    p = ref.features["c"]
    cur = rng.poisson(1.5, 3000).astype(float)
    sk = DriftPolicy().score_feature(
        p, FeatureWindow(kind=p.kind, rows=3000, missing={}, sketch=ExpHistogram.from_values(cur))
    )
    raw = DriftPolicy().score_feature(p, FeatureWindow(kind=p.kind, rows=3000, missing={}, values=cur))
    assert not sk.drift and not raw.drift
    assert sk.details["ks"] == pytest.approx(raw.details["ks"], abs=1e-12)  # the exact D, here
    assert sk.statistic < 0.05


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1000, 5000])
@pytest.mark.parametrize("as_sketch", [True, False], ids=["sketch", "raw"])
def test_healthy_windows_are_quiet_and_real_shifts_are_caught(kind, n, as_sketch):
    prof = REF.features[kind]
    policy = DriftPolicy()
    for seed in range(5):
        rng = np.random.default_rng([seed, n, KINDS.index(kind)])
        healthy = policy.score_feature(prof, _window(_draw(kind, n, rng), as_sketch))
        assert not healthy.drift, (kind, n, seed, healthy)
        moved = policy.score_feature(prof, _window(_draw(kind, n, rng, shifted=True), as_sketch))
        assert moved.drift and moved.cause == "distribution_shift", (kind, n, seed, moved)


@pytest.mark.parametrize("kind", KINDS)
def test_psi_and_jensen_shannon_from_sketches_stay_quiet_on_atoms(kind):
    prof = REF.features[kind]
    cur = ExpHistogram.from_values(_draw(kind, 5000, np.random.default_rng(9)))
    assert not PSI().fit(prof).score_sketch(cur).drift
    assert not JensenShannon().fit(prof).score_sketch(cur).drift


def _v1(ref: Reference) -> Reference:
    """The same profile as a format-1 file would hold it: no ``below``, quantile edges only."""
    doc = json.loads(json.dumps(ref.to_dict()))
    doc["format_version"] = 1
    for name, f in doc["features"].items():
        if "numeric" in f:
            a = REF_DATA[name]
            xs = np.sort(a)
            levels = np.linspace(0.0, 1.0, 201)
            pos = levels * (xs.size - 1)
            lo = np.floor(pos).astype(int)
            q = xs[lo] + (pos - lo) * (xs[np.minimum(lo + 1, xs.size - 1)] - xs[lo])
            edges = np.union1d(np.unique(q), f["numeric"]["bins"]["psi_edges"])
            f["numeric"]["bins"] = {
                "edges": edges.tolist(),
                "cum": np.searchsorted(xs, edges, "right").tolist(),
                "psi_edges": f["numeric"]["bins"]["psi_edges"],
            }
    return Reference.from_dict(doc)


@pytest.mark.parametrize("kind", KINDS)
def test_error_bounds_hold_for_every_representation(kind):
    """``KS <= D_exact <= KS + bound`` and ``|W - W_exact| <= bound`` against scipy, for the
    profile (v2 and v1) and a sketch as the reference, raw values and a sketch as current."""
    a = REF_DATA[kind]
    b = _draw(kind, 6000, np.random.default_rng(77), shifted=True)
    b = np.concatenate([b, _draw(kind, 6000, np.random.default_rng(78))])
    exact_d, exact_w = stats.ks_2samp(a, b).statistic, stats.wasserstein_distance(a, b)
    refs = [REF.features[kind], _v1(REF).features[kind], ExpHistogram.from_values(a)]
    for fitted in refs:
        for current in (b, ExpHistogram.from_values(b)):
            sketch = isinstance(current, ExpHistogram)
            k = KS().fit(fitted)
            k = k.score_sketch(current) if sketch else k.score(current)
            assert k.statistic <= exact_d + 1e-12 and exact_d <= k.statistic + k.details["error_bound"] + 1e-12, (
                type(fitted),
                sketch,
            )
            w = Wasserstein().fit(fitted)
            w = w.score_sketch(current) if sketch else w.score(current)
            scale = w.details["distance"] / w.statistic if w.statistic else 1.0
            assert abs(w.details["distance"] - exact_w) <= w.details["error_bound"] * scale + 1e-9, (
                type(fitted),
                sketch,
            )


@pytest.mark.parametrize("kind", KINDS + ["normal", "mixed_sign"])
def test_knots_are_exact_at_knots_and_envelopes_contain_the_true_cdf(kind):
    rng = np.random.default_rng(5)
    if kind == "normal":
        a = rng.normal(3, 2, 4000)
    elif kind == "mixed_sign":
        a = np.concatenate([rng.normal(0, 50, 3000), np.zeros(400), np.full(300, -2.0), np.full(300, 4.0)])
    else:
        a = _draw(kind, 4000, rng)
    xs = np.sort(a)
    ecdf = lambda q: np.searchsorted(xs, q, "right") / xs.size  # noqa: E731
    prof = Reference.from_data({"x": a}, model="m", multivariate=False).features["x"].numeric
    probes = np.concatenate([np.unique(a), below(np.unique(a)), rng.uniform(xs[0] - 1, xs[-1] + 1, 2000)])
    for k in (prof.knots(), Knots.from_sketch(ExpHistogram.from_values(a)), Knots.from_sorted(xs, xs[::37])):
        np.testing.assert_allclose(k.F, ecdf(k.x), atol=1e-12)
        assert np.all(k.lower(probes) <= ecdf(probes) + 1e-12) and np.all(ecdf(probes) <= k.upper(probes) + 1e-12)
        assert k.F[0] == 0.0 and k.F[-1] == 1.0


def test_low_cardinality_profiles_are_exact_and_heavy_atoms_are_kept():
    prof = REF.features["poisson"].numeric
    k = prof.knots()
    probes = np.linspace(-1, 15, 3001)
    np.testing.assert_allclose(k.lower(probes), k.upper(probes))  # the CDF is known everywhere
    assert set(np.unique(REF_DATA["poisson"])) <= set(prof.edges.tolist())
    # Many distinct values: only the heavy repeated ones become edges, with their exact jump.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 50000), np.full(400, 0.123), np.full(40, 1.5)])
    num = Reference.from_data({"x": x}, model="m", multivariate=False).features["x"].numeric
    i = int(np.searchsorted(num.edges, 0.123))
    assert num.edges[i] == 0.123 and num.cum[i] - num.below[i] == 400
    assert 1.5 not in num.edges.tolist()  # 40 of 50440 rows: under ATOM_MIN_SHARE
    assert num.edges.size <= 201 + 9 + MAX_ATOMS


def test_version_1_files_still_load_and_score_sketches_without_false_alarms(tmp_path):
    path = tmp_path / "old.json"
    doc = _v1(REF).to_dict()
    doc["format_version"] = 1
    for f in doc["features"].values():
        f.get("numeric", {}).get("bins", {}).pop("below", None)
    path.write_text(json.dumps(doc))
    old = Reference.load(path)
    assert old.features["poisson"].numeric.below is None
    for kind in KINDS:
        cur = _draw(kind, 5000, np.random.default_rng(31))
        assert not DriftPolicy().score_feature(old.features[kind], _window(cur, True)).drift, kind
        moved = _draw(kind, 5000, np.random.default_rng(32), shifted=True)
        assert DriftPolicy().score_feature(old.features[kind], _window(moved, True)).drift, kind
    # and a new file roundtrips with its atoms
    REF.save(tmp_path / "new.json")
    saved = json.loads((tmp_path / "new.json").read_text())
    assert saved["format_version"] == FORMAT_VERSION == 2
    assert "below" in saved["features"]["poisson"]["numeric"]["bins"]
    back = Reference.load(tmp_path / "new.json").features["poisson"].numeric
    np.testing.assert_array_equal(back.below, REF.features["poisson"].numeric.below)


def test_inconsistent_below_is_rejected(tmp_path):
    doc = REF.to_dict()
    doc["features"]["poisson"]["numeric"]["bins"]["below"][1] += 10**6
    with pytest.raises(ValueError, match="inconsistent"):
        Reference.from_dict(doc)


def test_a_rare_flag_that_is_all_zero_in_a_small_window_is_not_a_constant_column():
    rng = np.random.default_rng(3)
    ref = Reference.from_data({"f": (rng.random(20000) < 0.06).astype(float)}, model="m", multivariate=False).features[
        "f"
    ]
    assert ref.numeric.quantiles["p95"] == 1.0  # the reference's p05 and p95 differ
    zeros = np.zeros(60)  # 0.94**60 = 2.4%: happens every few dozen windows
    for as_sketch in (True, False):
        assert not DriftPolicy().score_feature(ref, _window(zeros, as_sketch)).drift
    # but a continuous feature stuck at one value still is
    cont = Reference.from_data({"x": rng.normal(size=5000)}, model="m", multivariate=False).features["x"]
    r = DriftPolicy().score_feature(cont, _window(np.zeros(60), True))
    assert r.drift and r.cause == "constant_column"


def test_a_past_window_of_counts_as_reference():
    rng = np.random.default_rng(8)
    ref = WindowSummary.from_columns({"c": rng.poisson(1.5, 8000).astype(float)}, kinds={"c": "numeric"}).as_reference(
        model="m"
    )
    for seed in range(5):
        r = np.random.default_rng(seed)
        same = WindowSummary.from_columns({"c": r.poisson(1.5, 3000).astype(float)}, kinds={"c": "numeric"})
        assert not DriftPolicy().evaluate(ref, same)["c"].drift
        assert not DriftPolicy().evaluate(ref, {"c": r.poisson(1.5, 3000).astype(float)})["c"].drift
        moved = WindowSummary.from_columns({"c": r.poisson(2.5, 3000).astype(float)}, kinds={"c": "numeric"})
        assert DriftPolicy().evaluate(ref, moved)["c"].drift
