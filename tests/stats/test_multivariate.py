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
