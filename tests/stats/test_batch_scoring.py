"""The batched scoring path (many features of a window at once) gives the per-feature path's
results: knots exactly, distances to rounding (1e-12 relative), verdicts, causes and p-values
identical, over many random windows including the awkward ones (NaN only, constant, one
bucket, zeros only, negatives, tiny, mixed signs)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from infersight.stats import cdf
from infersight.stats.cdf import Knots, KnotsBatch, below, distances, distances_batch
from infersight.stats.drift import KS, CategoricalPolicy, NumericPolicy
from infersight.stats.drift._dist import kstwo_sf, kstwo_sf_many
from infersight.stats.drift.combined import score_windows
from infersight.stats.reference import Reference
from infersight.stats.sketch import Buckets, ExpHistogram
from infersight.stats.windows import FeatureWindow

REL = 1e-12
REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
PURE = os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"


@pytest.fixture(params=["C", "numpy"])
def sweep(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test through the C code (knot_distances, sketch_knots), then through numpy alone."""
    if request.param == "C":
        if cdf._c_knot_distances is None or cdf._c_sketch_knots is None:
            if REQUIRED and not PURE:
                pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
            pytest.skip("the C extension is not in use")
    else:
        monkeypatch.setattr(cdf, "_c_knot_distances", None)
        monkeypatch.setattr(cdf, "_c_sketch_knots", None)
    return str(request.param)


def _sample(rng: np.random.Generator, kind: int) -> np.ndarray:
    n = int(rng.integers(1, 700))
    shift = float(rng.normal(0, 0.3)) if rng.random() < 0.5 else 0.0
    if kind == 0:
        return rng.normal(shift, 1, n)
    if kind == 1:
        return rng.lognormal(shift, 2, n)
    if kind == 2:
        return -rng.lognormal(0, 1, n)
    if kind == 3:
        return np.full(n, 3.0)
    if kind == 4:
        return rng.integers(-3, 4, n).astype(float)
    if kind == 5:
        return np.zeros(n)
    if kind == 6:
        return np.array([rng.normal()])
    if kind == 7:
        return np.full(n, np.nan)
    if kind == 8:
        return rng.normal(0, 1e-6, n) + 1e6 * (rng.random() < 0.5)
    if kind == 9:
        return np.concatenate([np.zeros(n // 2), rng.normal(0, 5, n - n // 2)])
    x = rng.normal(shift * 10, 1, n)  # a clear shift: drift, scored one window at a time
    x[: n // 10] = np.nan
    return x


def _sketches(seed: int, count: int) -> list[ExpHistogram]:
    rng = np.random.default_rng(seed)
    return [ExpHistogram.from_values(_sample(rng, i % 11)) for i in range(count)]


def _close(a: float, b: float) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def test_knots_from_sketches_equal_from_sketch_exactly(sweep: str) -> None:
    sketches = [s for s in _sketches(1, 400) if s.count > 0 and s.min == s.min]
    batch = KnotsBatch.from_sketches(sketches)
    assert len(batch) == len(sketches)
    for i, s in enumerate(sketches):
        one, got = Knots.from_sketch(s), batch.get(i)
        assert np.array_equal(one.x, got.x) and np.array_equal(one.F, got.F) and one.n == got.n


def test_knots_from_sketches_refuses_empty_sketch(sweep: str) -> None:
    with pytest.raises(ValueError, match="finite min/max"):
        KnotsBatch.from_sketches([ExpHistogram()])


def _damaged(good: ExpHistogram, **change: object) -> ExpHistogram:
    fields = dict(
        scale=good.scale,
        zero_count=good.zero_count,
        positive=good.positive,
        negative=good.negative,
        count=good.count,
        min=good.min,
        max=good.max,
    )
    fields.update(change)
    return ExpHistogram(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": 407}, "add up"),
        ({"min": 5.0, "max": -5.0}, "not increasing"),
        (
            {
                "positive": Buckets(3, np.array([4, -1, 2], np.int64)),
                "negative": Buckets(),
                "zero_count": 0,
                "count": 5,
            },
            "whole",
        ),
    ],
)
def test_knots_from_sketches_refuses_damaged_sketches_the_same_way(
    change: dict[str, object], message: str, sweep: str
) -> None:
    """A damaged sketch among good ones: the whole batch is refused with the same reason on
    both paths (the caller then scores each sketch on its own); the good ones alone are taken."""
    rng = np.random.default_rng(9)
    good = [ExpHistogram.from_values(rng.normal(size=400)) for _ in range(3)]
    with pytest.raises(ValueError, match=message):
        KnotsBatch.from_sketches([good[0], _damaged(good[1], **change), good[2]])
    batch = KnotsBatch.from_sketches(good)
    assert all(np.array_equal(batch.get(i).x, Knots.from_sketch(g).x) for i, g in enumerate(good))


def test_sketch_knots_in_c_hands_back_what_it_cannot_read() -> None:
    if cdf._c_sketch_knots is None:
        pytest.skip("the C extension is not in use")
    f = cdf._c_sketch_knots
    info = np.array([[2, 1, 0, 0, 0, 0, 3, 0, 0]], np.float64)[:, :7]  # 3 buckets, count 3
    cnt, lo, hi = np.ones(3), np.array([2.0, 1.0, 1.0]), np.array([4.0, 2.0, 2.0])  # [-4, -2), [-2, -1), (1, 2]
    mins, maxs = np.array([-4.0]), np.array([2.0])
    x, F, starts = np.empty(9), np.empty(9), np.empty(2, np.intp)
    assert f(cnt, info, lo, hi, mins, maxs, x, F, starts) == 5
    assert starts.tolist() == [0, 5]
    assert x[:5].tolist() == [below(-4.0), below(-2.0), below(-1.0), 1.0, 2.0]
    assert F[:5].tolist() == [0.0, 1 / 3, 2 / 3, 2 / 3, 1.0]
    assert f(cnt[:2], info, lo[:2], hi[:2], mins, maxs, x, F, starts) is None  # buckets missing
    assert f(cnt, info, lo, hi, mins, maxs, x[:8], F[:8], starts) is None  # no room
    with pytest.raises(TypeError, match="9 arguments"):
        f(cnt, info)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_distances_batch_equal_distances(seed: int, sweep: str) -> None:
    sketches = [s for s in _sketches(seed, 300) if s.count > 0]
    rng = np.random.default_rng(seed)
    # references of every shape: other sketches, raw samples' knots, profiles' knots
    refs: list[Knots] = []
    for i in range(len(sketches)):
        if i % 3 == 0:
            refs.append(Knots.from_sketch(sketches[(i * 7 + 1) % len(sketches)]))
        elif i % 3 == 1:
            xs = np.sort(rng.normal(0, 1, 50))
            refs.append(Knots.from_sorted(xs, xs[::5]))
        else:
            x = rng.normal(0, 2, 2000)
            prof = Reference.from_data({"x": x}, model=None, multivariate=False).features["x"]
            assert prof.numeric is not None
            refs.append(prof.numeric.knots())
    cur = KnotsBatch.from_sketches(sketches)
    got = distances_batch(KnotsBatch.of(refs), cur)
    for i, ref in enumerate(refs):
        want = distances(ref, cur.get(i))
        assert all(_close(float(g), w) for g, w in zip(got[i], want)), (i, got[i], want)


def test_distances_batch_identical_sets_and_disjoint_sets(sweep: str) -> None:
    a = Knots.from_sketch(ExpHistogram.from_values(np.arange(1.0, 50.0)))
    b = Knots.from_sketch(ExpHistogram.from_values(np.arange(1000.0, 1050.0)))
    got = distances_batch(KnotsBatch.of([a, a, b]), KnotsBatch.of([a, b, a]))
    for row, (x, y) in zip(got, [(a, a), (a, b), (b, a)]):
        assert all(_close(float(g), w) for g, w in zip(row, distances(x, y)))
    assert got[0, 0] == 0.0 and got[1, 0] == 1.0


def _adversarial_pairs(seed: int) -> tuple[list[Knots], list[Knots]]:
    """Pairs of sets of knots of every awkward kind: sketches of the sample kinds above
    (constant, one value, zeros only, mixed signs, tiny, shifted; NaN only has no knots)
    against each other, against themselves, against raw samples' and profiles' knots, against
    a copy moved by one float (no float between their knots) and against a subset of its own
    knots (ties everywhere)."""
    rng = np.random.default_rng(seed)
    sketches = [s for s in _sketches(seed, 220) if s.count > 0]
    own = [Knots.from_sketch(s) for s in sketches]
    left: list[Knots] = []
    right: list[Knots] = []
    for i, k in enumerate(own):
        other = own[(i * 7 + 3) % len(own)]
        xs = np.sort(rng.normal(0, 1, int(rng.integers(1, 60))))
        sample = Knots.from_sorted(xs, xs[:: int(rng.integers(1, 6))])
        nudged = Knots(np.nextafter(k.x, np.inf), k.F, k.n)
        sub = np.unique(np.concatenate([[0, k.x.size - 1], rng.integers(0, k.x.size, max(k.x.size // 3, 1))]))
        subset = Knots(k.x[sub], k.F[sub], k.n)
        atom = Knots(np.array([below(k.x[-1]), k.x[-1]]), np.array([0.0, 1.0]), 5)  # everything at the maximum
        for x, y in [(k, other), (k, k), (sample, k), (k, nudged), (subset, k), (atom, k), (k, atom)]:
            left.append(x)
            right.append(y)
    return left, right


def _same_rows(got: np.ndarray, ref: np.ndarray) -> None:
    """KS bounds (maxima of the same differences) exactly; Wasserstein sums to rounding."""
    assert np.array_equal(got[:, :2], ref[:, :2])
    assert np.all(np.abs(got[:, 2:] - ref[:, 2:]) <= REL * np.maximum(np.abs(got[:, 2:]), np.abs(ref[:, 2:])))


@pytest.mark.parametrize("seed", [11, 12])
def test_knot_distances_in_c_equal_the_numpy_sweep(seed: int, sweep: str) -> None:
    """The C merge and the numpy sweep give the same rows: KS bounds (maxima) exactly, the
    Wasserstein sums to 1e-12 relative; both agree with :func:`distances` pair by pair."""
    left, right = _adversarial_pairs(seed)
    a, b = KnotsBatch.of(left), KnotsBatch.of(right)
    got = distances_batch(a, b)
    ref = cdf._distances_sweep(a, b)
    assert got.shape == ref.shape == (len(left), 5)
    _same_rows(got, ref)
    for i, (x, y) in enumerate(zip(left, right)):
        want = distances(x, y)
        assert all(_close(float(g), w) for g, w in zip(got[i], want)), (i, got[i], want)
    assert np.all(got[len(left) // 7 :: 7][:, 0] >= 0) and np.any(got[:, 0] > 0.5)  # not all alike
    same = got[1::7]  # each set against itself: nothing proven, nothing interpolated
    assert np.all(same[:, [0, 2, 3]] == 0.0)


def test_knot_distances_in_c_hands_back_what_it_cannot_read() -> None:
    """Arrays that do not fit together come back as None, the output untouched: the caller
    then runs the numpy sweep."""
    if cdf._c_knot_distances is None:
        pytest.skip("the C extension is not in use")
    k = Knots.from_sketch(ExpHistogram.from_values([1.0, 2.0, 3.0]))
    a = KnotsBatch.of([k, k])
    out = np.full((2, 5), -7.0)
    f = cdf._c_knot_distances
    assert f(a.x, a.F, a.starts, a.x, a.F, a.starts, out) is True
    _same_rows(out, cdf._distances_sweep(a, a))
    out[:] = -7.0
    bad_starts = a.starts.copy()
    bad_starts[1] = 1  # a set of one knot
    assert f(a.x, a.F, bad_starts, a.x, a.F, a.starts, out) is None
    assert f(a.x, a.F[:-1], a.starts, a.x, a.F, a.starts, out) is None
    assert f(a.x, a.F, a.starts, a.x, a.F, a.starts, out[:1]) is None
    assert np.all(out == -7.0)
    with pytest.raises(TypeError, match="7 arguments"):
        f(a.x, a.F)


def test_pure_python_variable_turns_the_c_distances_off() -> None:
    import subprocess
    import sys

    probe = "from infersight.stats import cdf; print(cdf._c_knot_distances is None, cdf._c_sketch_knots is None)"
    env = {**os.environ, "INFERSIGHT_PURE_PYTHON": "1"}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "True"]


def test_distances_batch_refuses_empty_sets() -> None:
    a = Knots.from_sketch(ExpHistogram.from_values([1.0, 2.0]))
    with pytest.raises(ValueError, match="n > 0"):
        distances_batch(KnotsBatch.of([a]), KnotsBatch.of([Knots(np.zeros(0), np.zeros(0), 0)]))
    with pytest.raises(ValueError, match="pairwise"):
        distances_batch(KnotsBatch.of([a]), KnotsBatch.of([a, a]))


def test_kstwo_sf_many_equals_kstwo_sf() -> None:
    rng = np.random.default_rng(5)
    d = np.concatenate([rng.random(300) * 0.3, [0.0, -0.1, 1.0, 1.5, 0.999]])
    n = rng.integers(5, 5000, d.size)
    got = kstwo_sf_many(d, n)
    assert [float(v) for v in got] == [kstwo_sf(float(x), int(k)) for x, k in zip(d, n)]


@pytest.mark.parametrize("seed", [6, 7])
def test_score_windows_equal_score_window(seed: int, monkeypatch: pytest.MonkeyPatch, sweep: str) -> None:
    import infersight.stats.drift.combined as combined

    batched: list[int] = []
    real = combined.distances_batch

    def counting(a: KnotsBatch, b: KnotsBatch) -> np.ndarray:
        batched.append(len(a))
        return real(a, b)

    monkeypatch.setattr(combined, "distances_batch", counting)
    rng = np.random.default_rng(seed)
    profiles = Reference.from_data(
        {
            "normal": rng.normal(0, 1, 3000),
            "skewed": rng.lognormal(0, 1.5, 3000),
            "counts": rng.poisson(2, 3000).astype(float),
            "signed": rng.normal(-1, 3, 3000),
            "flag": (rng.random(3000) < 0.05).astype(float),
        },
        model=None,
        multivariate=False,
    ).features
    methods: list[object] = []
    windows: list[FeatureWindow] = []
    for i, s in enumerate(_sketches(seed, 330)):
        prof = list(profiles.values())[i % len(profiles)]
        m = NumericPolicy(alpha=0.001 if i % 4 else 0.05, min_rows=30 if i % 5 else 1).fit(prof)
        methods.append(m)
        windows.append(FeatureWindow("numeric", s.count, {}, s, None))
    # other methods and window shapes go through score_window untouched
    methods.append(KS().fit(rng.normal(size=200)))
    windows.append(FeatureWindow("numeric", 300, {}, ExpHistogram.from_values(rng.normal(size=300)), None))
    methods.append(NumericPolicy().fit(rng.normal(size=500)))  # raw reference
    windows.append(FeatureWindow("numeric", 300, {}, ExpHistogram.from_values(rng.normal(size=300)), None))
    methods.append(CategoricalPolicy().fit({"a": 50, "b": 50}))
    windows.append(FeatureWindow("categorical", 90, {}, None, {"a": 60, "b": 30}))
    got = score_windows(methods, windows)
    want = [m.score_window(w) for m, w in zip(methods, windows)]  # type: ignore[attr-defined]
    assert len(got) == len(want)
    drifted = 0
    for g, w in zip(got, want):
        assert (g.method, g.drift, g.cause, g.threshold, g.n_reference, g.n_current) == (
            w.method,
            w.drift,
            w.cause,
            w.threshold,
            w.n_reference,
            w.n_current,
        )
        assert _close(g.statistic, w.statistic) and (g.p_value is None) == (w.p_value is None)
        if g.p_value is not None and w.p_value is not None:
            assert _close(g.p_value, w.p_value)
        assert set(g.details) == set(w.details)
        for k, v in w.details.items():
            if isinstance(v, float):
                assert _close(g.details[k], v), (k, g.details[k], v)
            else:
                assert g.details[k] == v
        drifted += bool(w.drift)
    assert drifted > 10  # the shifted windows did reach the per-window path
    assert sum(batched) > 150  # and most of the others were scored in batches


def test_a_sketch_the_batch_refuses_is_scored_on_its_own(sweep: str) -> None:
    rng = np.random.default_rng(8)
    m = NumericPolicy().fit(ExpHistogram.from_values(rng.normal(size=3000)))
    good = ExpHistogram.from_values(rng.normal(size=400))
    # buckets that do not add up to the count (a hand-made or damaged sketch)
    odd = ExpHistogram(
        scale=good.scale,
        zero_count=good.zero_count,
        positive=good.positive,
        negative=good.negative,
        count=good.count + 7,
        min=good.min,
        max=good.max,
    )
    with pytest.raises(ValueError, match="add up"):
        KnotsBatch.from_sketches([good, odd])
    windows = [FeatureWindow("numeric", s.count, {}, s, None) for s in (good, odd, good)]
    got = score_windows([m, m, m], windows)
    want = [m.score_window(w) for w in windows]
    assert [(r.drift, r.cause, r.n_current) for r in got] == [(r.drift, r.cause, r.n_current) for r in want]
    assert all(_close(g.statistic, w.statistic) for g, w in zip(got, want))


def test_score_windows_needs_pairs() -> None:
    with pytest.raises(ValueError, match="pairs"):
        score_windows([NumericPolicy()], [])
