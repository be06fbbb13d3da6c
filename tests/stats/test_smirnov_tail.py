"""The one-sided Kolmogorov–Smirnov tail in C (``_speedups.smirnov_sf``) equals its reference,
``scipy.special.smirnov``, to 1e-12 relative: over a grid of n from 1 to scipy's exact limit,
at lattice points ``k / n`` (where Smirnov's sum gains or loses a term), at the tail edges the
drift tests use, and at the ends. The KS p-values built on it (``kstwo_sf``, ``kstwo_sf_many``,
the two-sample ``ks_p`` at the effective size) equal the scipy path's, including statistics of
samples with ties."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from infersight.stats.drift import _dist
from infersight.stats.drift._dist import kstwo_sf, kstwo_sf_many, smirnov_sf
from infersight.stats.drift.ks import ks_p

REL = 1e-12
REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
PURE = os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"


@pytest.fixture
def c_tail() -> object:
    f = _dist._c_smirnov_sf
    if f is None:
        if REQUIRED and not PURE:
            pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
        pytest.skip("the C extension is not in use")
    return f


def _close(got: float, want: float, rel: float = REL) -> bool:
    return got == pytest.approx(want, rel=rel, abs=1e-300)


NS = (1, 2, 3, 4, 5, 7, 10, 16, 30, 31, 64, 100, 140, 141, 455, 499, 500, 1000, 4545, 20_000)


@pytest.mark.parametrize("n", NS)
def test_c_tail_equals_scipy_smirnov_over_a_grid(n: int, c_tail: object) -> None:
    ds = {0.5 / n, 1.0 / n, 1e-4, 0.003, 0.01, 0.03, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999}
    for q in (0.5, 0.1, 0.05, 0.01, 1e-4, 1e-8, 1e-15, 1e-50, 1e-200):
        d = float(special.smirnovi(n, q))
        ds.update((d, math.nextafter(d, 0.0), math.nextafter(d, 1.0), d * 0.999, d * 1.001))
    for d in sorted(x for x in ds if 0.0 < x < 1.0):
        want = float(special.smirnov(n, d))
        got = c_tail(n, d)  # type: ignore[operator]
        assert _close(got, want), (n, d, got, want)


@pytest.mark.parametrize("n", (100_001,))
def test_c_tail_equals_scipy_smirnov_at_large_n(n: int, c_tail: object) -> None:
    # scipy's exact sum takes 0.1 s to seconds here (measured equal to 3e-13 up to its last
    # exact n, 1e6, where it takes minutes over a grid): one tail point
    ds = [float(special.smirnovi(n, 0.05))]
    for d in sorted(x for x in ds if 0.0 < x < 1.0):
        want = float(special.smirnov(n, d))
        got = c_tail(n, d)  # type: ignore[operator]
        assert _close(got, want), (n, d, got, want)


@pytest.mark.parametrize("n", (1, 2, 3, 9, 10, 50, 455, 1001))
def test_c_tail_equals_scipy_at_lattice_points(n: int, c_tail: object) -> None:
    # d = k / n: the sum's last term is (1 - d - j/n)^(n-j) at 0, or just past it after rounding
    ks = range(1, n) if n <= 50 else (1, 2, 3, n // 10, n // 3, n // 2, n - 2, n - 1)
    for k in ks:
        d = k / n
        for x in (d, math.nextafter(d, 0.0), math.nextafter(d, 1.0)):
            want = float(special.smirnov(n, x))
            assert _close(c_tail(n, x), want), (n, k, x)  # type: ignore[operator]


def test_c_tail_ends_and_refusals(c_tail: object) -> None:
    f = c_tail
    for n in (1, 5, 500):
        assert f(n, 0.0) == 1.0 and f(n, -0.5) == 1.0  # type: ignore[operator]
        assert f(n, 1.0) == 0.0 and f(n, 2.0) == 0.0  # type: ignore[operator]
        assert math.isnan(f(n, math.nan))  # type: ignore[operator]
        assert f(n, math.inf) == 0.0 and f(n, -math.inf) == 1.0  # type: ignore[operator]
    assert f(1, 0.25) == pytest.approx(0.75, rel=1e-15)  # type: ignore[operator]
    with pytest.raises(ValueError, match="n must be at least 1"):
        f(0, 0.1)  # type: ignore[operator]
    with pytest.raises(TypeError, match="2 arguments"):
        f(5)  # type: ignore[operator]
    with pytest.raises(TypeError):
        f(5, "0.1")  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 3000), d=st.floats(0.0, 1.0, allow_nan=False))
def test_c_tail_property_equals_scipy_and_is_a_tail(n: int, d: float) -> None:
    want = float(special.smirnov(n, d))
    got = smirnov_sf(n, d)  # the C path when built, scipy's otherwise
    assert 0.0 <= got <= 1.0
    assert _close(got, want), (n, d)
    if d < 1.0:  # falls with d
        assert smirnov_sf(n, min(1.0, d + 0.01)) <= got * (1 + 1e-12)


def test_python_path_is_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dist, "_c_smirnov_sf", None)
    for n, d in ((5, 0.3), (455, 0.07), (100_000, 0.005)):
        assert smirnov_sf(n, d) == float(special.smirnov(n, d))
    # past scipy's exact limit, scipy's approximation is used even with the extension
    assert _dist._SMIRNOV_C_MAX == 1_000_000


def test_kstwo_sf_c_equals_python_path(monkeypatch: pytest.MonkeyPatch, c_tail: object) -> None:
    rng = np.random.default_rng(11)
    d = np.concatenate([rng.random(400) * 0.3, [0.0, -0.1, 1.0, 1.5, 0.999, 0.0649, 0.065]])
    n = rng.integers(1, 5000, d.size)
    with_c = [kstwo_sf(float(x), int(k)) for x, k in zip(d, n)]
    many_c = [float(v) for v in kstwo_sf_many(d, n)]
    monkeypatch.setattr(_dist, "_c_smirnov_sf", None)
    ref = [kstwo_sf(float(x), int(k)) for x, k in zip(d, n)]
    many_ref = [float(v) for v in kstwo_sf_many(d, n)]
    assert many_c == with_c and many_ref == ref
    assert all(_close(a, b) for a, b in zip(with_c, ref)), [(a, b) for a, b in zip(with_c, ref) if not _close(a, b)]
    # the tail (where the exact sum is used) was reached often
    assert sum(1 for v in ref if v < 0.1) > 50


def _d_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a), np.sort(b)
    allv = np.concatenate([a, b])
    return float(
        np.max(np.abs(np.searchsorted(a, allv, "right") / a.size - np.searchsorted(b, allv, "right") / b.size))
    )


@pytest.mark.parametrize("m", (40, 300, 5000))
@pytest.mark.parametrize("n", (35, 500, 2001))
def test_two_sample_p_values_with_ties_equal_scipy(m: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(m * 7 + n)
    en = round(m * n / (m + n))
    seen_tail = 0
    for shift in (0.0, 0.1, 0.25, 0.5, 1.0):
        for decimals in (0, 1, 3):  # rounded values: many ties, D on a coarse lattice
            a = np.round(rng.normal(0, 1, m), decimals)
            b = np.round(rng.normal(shift, 1, n), decimals)
            d = _d_two_sample(a, b)
            got = ks_p(d, m, n)
            with monkeypatch.context() as mp:
                mp.setattr(_dist, "_c_smirnov_sf", None)
                ref = ks_p(d, m, n)
            assert _close(got, ref), (m, n, shift, decimals, got, ref)
            exact = float(stats.kstwo.sf(d, en))
            if exact < 0.1:
                seen_tail += 1
                # scipy's two-sided distribution at the effective size: 1e-4 in the tail
                # (kstwo_sf's docstring; past n = 140 scipy's own is an approximation)
                assert got == pytest.approx(exact, rel=1e-4, abs=1e-300)
    assert seen_tail >= 2
