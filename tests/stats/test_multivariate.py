"""MMD scores windows from blocks of the kernel matrix (the reference block and the
permutations computed once per window size); the answer is the full-matrix one."""

from __future__ import annotations

import numpy as np
import pytest

from infersight.stats.multivariate import MMD, _median, _sq_dists


def _full_matrix(mmd: MMD, columns: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """The permutation test as one (m + n)² kernel matrix, as MMD computed it before."""
    y = mmd.project(columns)
    rng = np.random.default_rng(mmd.seed)
    if y.shape[0] > mmd.rows:
        y = y[rng.choice(y.shape[0], mmd.rows, replace=False)]
    x = mmd._sample
    m, n = x.shape[0], y.shape[0]
    z = np.vstack([x, y])
    k = np.exp(-mmd._gamma * _sq_dists(z, z))
    w = np.empty((mmd.permutations + 1, m + n))
    base = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    w[0] = base
    for i in range(1, mmd.permutations + 1):
        w[i] = base[rng.permutation(m + n)]
    stats = np.einsum("ij,ij->i", w @ k, w)
    null = stats[1:]
    return float(stats[0]), float((1 + np.sum(null >= stats[0])) / (1 + null.size)), float(np.quantile(null, 0.99))


def test_blocked_mmd_equals_the_full_kernel_matrix_for_repeated_and_new_window_sizes():
    rng = np.random.default_rng(3)
    mmd = MMD().fit({"a": rng.normal(size=3000), "b": rng.normal(size=3000), "c": rng.normal(size=3000)})
    for n, shift in [(2000, 0.0), (2000, 0.3), (300, 0.1), (2000, 0.0), (40, 0.5), (700, 0.05), (300, 0.0)]:
        window = {"a": rng.normal(shift, 1, n), "b": rng.normal(size=n), "c": rng.normal(size=n)}
        r = mmd.score(window)
        stat, p, threshold = _full_matrix(mmd, window)
        assert abs(r.statistic - stat) <= 1e-12 and r.p_value == p and abs(r.threshold - threshold) <= 1e-12


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 124_750])  # 124,750: the pairs of the 500-row sample
def test_the_bandwidths_median_is_numpys(n):
    rng = np.random.default_rng(n)
    for x in (rng.lognormal(0, 2, n), np.round(rng.normal(size=n), 1), np.zeros(n)):
        assert _median(x) == np.median(x)


def _corr_window(rng: np.random.Generator, n: int, rho: float) -> dict[str, np.ndarray]:
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho * rho) * rng.normal(size=n)
    return {"a": a, "b": b, "c": rng.normal(size=n)}


@pytest.mark.parametrize(("alpha", "permutations", "stop_after"), [(0.001, 1999, 10), (0.05, 299, 1), (0.01, 300, 10)])
def test_sequential_stopping_gives_the_full_tests_verdicts(alpha: float, permutations: int, stop_after: int) -> None:
    rng = np.random.default_rng(8)
    ref = _corr_window(rng, 4000, 0.6)
    full = MMD(alpha=alpha, permutations=permutations).fit(ref)
    fast = MMD(alpha=alpha, permutations=permutations, stop_after=stop_after).fit(ref)
    runs, drifts = [], 0
    for i in range(40):
        n = int(rng.integers(30, 900))
        window = _corr_window(rng, n, 0.6 if i % 4 else -0.6)  # every fourth window: the correlation flips
        a, b = full.score(window), fast.score(window)
        assert b.drift == a.drift, (i, n, a.p_value, b.p_value)
        assert b.statistic == pytest.approx(a.statistic, rel=1e-12, abs=1e-15)
        run = b.details["permutations_run"]
        runs.append(run)
        drifts += a.drift
        if run == permutations:  # not stopped: the full test's numbers
            assert b.p_value == a.p_value and b.threshold == pytest.approx(a.threshold, rel=1e-12, abs=1e-15)
        else:  # stopped: Besag-Clifford's p, above alpha
            assert b.p_value is not None and b.p_value >= alpha and not b.drift
            g_max = max(g for g in range(-1, permutations) if g < 0 or (1 + g) / (1 + permutations) < alpha)
            h = max(stop_after, g_max + 1)
            assert b.p_value == max(h / run, (1 + h) / (1 + permutations))
    assert drifts >= 10  # the flips were caught, by both
    assert float(np.median(runs)) < permutations / 2  # and the unchanged windows stopped early


def test_sequential_null_alarm_rate_stays_at_alpha_and_a_joint_shift_is_caught() -> None:
    rng = np.random.default_rng(21)
    ref = _corr_window(rng, 4000, 0.5)
    alpha, windows = 0.05, 300
    mmd = MMD(alpha=alpha, permutations=299, stop_after=10).fit(ref)
    alarms, runs = 0, 0
    for _ in range(windows):
        r = mmd.score(_corr_window(rng, int(rng.integers(100, 400)), 0.5))
        alarms += r.drift
        runs += r.details["permutations_run"]
    # binomial(300, 0.05): mean 15, sd 3.8; the permutation test is exact, so at most ~mean + 3 sd
    assert alarms <= windows * alpha + 3 * np.sqrt(windows * alpha * (1 - alpha))
    assert runs / windows < 100  # of 299: most null windows stop within the first blocks
    strict = MMD(alpha=0.001, permutations=1999, stop_after=10).fit(ref)
    full = MMD(alpha=0.001, permutations=1999).fit(ref)
    flips = [_corr_window(rng, 300, -0.5) for _ in range(20)]
    caught = [strict.score(w).drift for w in flips]
    assert caught == [full.score(w).drift for w in flips]  # the full test's power, window by window
    assert sum(caught) >= 18


def test_stop_after_is_checked() -> None:
    with pytest.raises(ValueError, match="stop_after=0"):
        MMD(stop_after=0)
