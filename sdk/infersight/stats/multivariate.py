"""Multivariate drift: Maximum Mean Discrepancy on a PCA-reduced sample.

Univariate tests miss changes in how features move together (a correlation flips while each
marginal stays put). MMD with an RBF kernel sees those. It is quadratic in the sample size, so
the reference keeps a small sample (500 rows) projected on its first principal components
(PCA fitted on the standardised reference), and the current window is subsampled the same way.
The bandwidth is the median pairwise distance in the reference sample (median heuristic); the
p-value comes from a permutation test computed as matrix products over blocks of permutations,
optionally stopped early by Besag and Clifford's rule (``MMD(stop_after=...)``: the same
verdicts at a fraction of the work on windows that did not drift).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = reference_sample({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    >>> m = MMD().fit(ref)
    >>> m.score({"a": rng.normal(size=500), "b": rng.normal(size=500)}).drift
    False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.result import DriftResult

__all__ = ["reference_sample", "sample_rows", "sample_from_rows", "MMD"]

SAMPLE_ROWS = 500
MAX_COMPONENTS = 10
_FIT_ROWS = 20_000  # rows the PCA is fitted on


def reference_sample(
    numeric: Mapping[str, npt.NDArray[np.float64]],
    *,
    rows: int = SAMPLE_ROWS,
    components: int = MAX_COMPONENTS,
    seed: int = 0,
    moments: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The JSON-safe multivariate part of a reference: standardisation, PCA and a sample.

    ``moments``: each column's mean and population std of its finite values, when the caller
    has them (a reference profile does); otherwise they are computed here. Only the sampled
    rows are standardised: the whole table is never copied.
    """
    names = list(numeric)
    cols = [np.asarray(numeric[n], np.float64) for n in names]
    n_rows = cols[0].shape[0] if cols else 0
    known = dict(moments or {})
    for name, col in zip(names, cols):
        if name not in known:
            known[name] = _finite_moments(col)
    fit_at, sample_at = sample_rows(n_rows, rows=rows, seed=seed)
    return sample_from_rows(
        {n: c[fit_at] for n, c in zip(names, cols)},
        {n: c[sample_at] for n, c in zip(names, cols)},
        known,
        components=components,
    )


def sample_rows(
    n_rows: int, *, rows: int = SAMPLE_ROWS, seed: int = 0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Which rows :func:`reference_sample` fits the PCA on (20,000) and keeps as the sample
    (``rows``): a caller that loads one column at a time keeps just these rows of each."""
    rng = np.random.default_rng(seed)
    fit_at = rng.choice(n_rows, min(n_rows, _FIT_ROWS), replace=False)
    return fit_at, rng.choice(n_rows, min(n_rows, rows), replace=False)


def sample_from_rows(
    fit_rows: Mapping[str, npt.NDArray[np.float64]],
    sample_rows: Mapping[str, npt.NDArray[np.float64]],
    moments: Mapping[str, tuple[float, float]],
    *,
    components: int = MAX_COMPONENTS,
) -> dict[str, Any]:
    """:func:`reference_sample` from each column's rows at :func:`sample_rows` (same keys, same
    order) and its mean and population std of the finite values."""
    names = list(fit_rows)
    mean = np.empty(len(names))
    scale = np.empty(len(names))
    for i, name in enumerate(names):
        mean[i], scale[i] = moments[name]
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.where(~np.isfinite(scale) | (scale == 0), 1.0, scale)

    def standardised(rows_of: Mapping[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        m = np.column_stack([rows_of[n] for n in names])
        m = np.where(np.isfinite(m), m, np.nan)
        return np.nan_to_num((m - mean) / scale)

    fit = standardised(fit_rows)
    k = min(components, len(names))
    _, _, vt = np.linalg.svd(fit - fit.mean(axis=0), full_matrices=False)
    comp = vt[:k]
    sample = standardised(sample_rows) @ comp.T
    bandwidth = _median_distance(sample)
    return {
        "columns": names,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "components": comp.tolist(),
        "sample": sample.tolist(),
        "bandwidth": bandwidth,
    }


def _finite_moments(col: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Mean and population std of the finite values (NaN when there are none)."""
    x = col if np.isfinite(col).all() else col[np.isfinite(col)]
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std())


def _median_distance(x: npt.NDArray[np.float64]) -> float:
    d2 = _sq_dists(x, x)
    iu = np.triu_indices(x.shape[0], 1)
    med = float(np.sqrt(_median(d2[iu]))) if iu[0].size else 1.0
    return med if med > 0 else 1.0


def _median(x: npt.NDArray[np.float64]) -> np.float64:
    """``np.median`` of NaN-free values, the same partition and the same mean of the middle
    two; numpy's checks for NaN through ``numpy.ma``, whose import is 7 ms of a profile run."""
    k = x.size // 2
    if x.size % 2:
        return np.partition(x, k)[k]
    part = np.partition(x, [k - 1, k])
    return (part[k - 1] + part[k]) / 2


def _sq_dists(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0.0)


class MMD:
    """Kernel two-sample test on the reduced sample; ``statistic`` is the biased MMD².

    ``alpha`` is the false-alarm rate per window; ``permutations`` sets the p-value resolution
    (the smallest reachable p-value is ``1 / (permutations + 1)``).

    ``stop_after`` (``None``: every permutation runs) turns on Besag and Clifford's sequential
    stopping (Biometrika 1991): permutations run in blocks (16, 32, 64, ...) and stop once
    ``h = max(stop_after, g + 1)`` of them reach the observed statistic, where ``g`` is the most
    that still lets the full test reject. Stopped there, the full test could no longer reject:
    the verdict is the full test's on the same permutations, always, so the false-alarm rate
    and the power are the full test's; the p-value is Besag and Clifford's ``h / L`` after
    ``L`` permutations (valid, coarser; raised to ``(1 + h) / (1 + permutations)``, what the
    full test would at least say, so a stopped test never reports one under ``alpha``), and
    ``threshold`` the null quantile of the ones run.
    A window with no drift (p-value about uniform) stops after about ``h (1 + ln(P / h))``
    permutations of the ``P`` (tens, not thousands); ``details["permutations_run"]`` says how
    many ran.

    >>> rng = np.random.default_rng(1)
    >>> cols = {"a": rng.normal(size=2000), "b": rng.normal(size=2000)}
    >>> full, fast = MMD(permutations=999).fit(cols), MMD(permutations=999, stop_after=10).fit(cols)
    >>> w = {"a": rng.normal(size=300), "b": rng.normal(size=300)}
    >>> full.score(w).drift == fast.score(w).drift, fast.score(w).details["permutations_run"] < 999
    (True, True)
    """

    name = "mmd"

    def __init__(
        self,
        alpha: float = 0.01,
        permutations: int = 300,
        rows: int = SAMPLE_ROWS,
        seed: int = 0,
        stop_after: int | None = None,
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha!r} must be between 0 and 1, e.g. 0.01")
        if stop_after is not None and stop_after < 1:
            raise ValueError(f"stop_after={stop_after!r} must be a count of at least 1 (e.g. 10), or None")
        self.alpha, self.permutations, self.rows, self.seed = alpha, permutations, rows, seed
        self.stop_after = stop_after
        self._ref: dict[str, Any] | None = None

    def fit(self, reference: Any) -> MMD:
        """``reference``: a ``Reference`` (its ``multivariate`` part), that dict, or numeric columns."""
        part = getattr(reference, "multivariate", reference)
        if part is None:
            raise ValueError("the reference has no multivariate sample (it needs at least two numeric features)")
        if "components" not in part:
            part = reference_sample(part, rows=self.rows, seed=self.seed)
        self._ref = part
        self._sample = np.asarray(part["sample"], np.float64)
        self._mean = np.asarray(part["mean"], np.float64)
        self._scale = np.asarray(part["scale"], np.float64)
        self._comp = np.asarray(part["components"], np.float64)
        self._gamma = 1.0 / (2.0 * float(part["bandwidth"]) ** 2)
        # The reference block of the kernel matrix is the same for every window.
        self._kxx = np.exp(-self._gamma * _sq_dists(self._sample, self._sample))
        self._nulls: dict[int, _Splits] = {}
        return self

    def project(self, columns: Mapping[str, npt.ArrayLike]) -> npt.NDArray[np.float64]:
        """Standardise and project current columns (missing columns count as the reference mean)."""
        if self._ref is None:
            raise RuntimeError("call fit(reference) before score()")
        names = self._ref["columns"]
        n = max((len(np.asarray(columns[c])) for c in names if c in columns), default=0)
        m = np.column_stack(
            [
                np.asarray(columns[c], np.float64) if c in columns else np.full(n, self._mean[i])
                for i, c in enumerate(names)
            ]
        )
        z = np.nan_to_num((np.where(np.isfinite(m), m, np.nan) - self._mean) / self._scale)
        return z @ self._comp.T

    def score(self, columns: Mapping[str, npt.ArrayLike]) -> DriftResult:
        """Test a window given as columns (the same names as the reference)."""
        y = self.project(columns)
        rows = y.shape[0]
        rng = np.random.default_rng(self.seed)
        if y.shape[0] > self.rows:
            y = y[rng.choice(y.shape[0], self.rows, replace=False)]
        x = self._sample
        m, n = x.shape[0], y.shape[0]
        if n < 10:
            return DriftResult("mmd", math.nan, math.nan, None, False, "too_few_rows", n_reference=m, n_current=n)
        splits = self._nulls.get(rows)
        if splits is None:
            if len(self._nulls) >= 16:  # time windows rarely repeat a size; keep a few
                self._nulls.pop(next(iter(self._nulls)))
            splits = self._nulls[rows] = _Splits(self.permutations, m, n, rng, self._kxx)
        # w K w over the blocks of K = [[Kxx, Kxy], [Kxy', Kyy]]: the Kxx term depends only on
        # the permutations, so windows of the same size pay for the two window blocks alone.
        kxy = np.exp(-self._gamma * _sq_dists(x, y))
        kyy = np.exp(-self._gamma * _sq_dists(y, y))
        total = self.permutations
        # the most permutations at or above the observed statistic with which the full test
        # still rejects: (1 + g) / (1 + total) < alpha
        g_max = math.ceil(self.alpha * (1 + total)) - 2
        while (2 + g_max) / (1 + total) < self.alpha:  # the same comparison as the verdict's
            g_max += 1
        while g_max >= 0 and not (1 + g_max) / (1 + total) < self.alpha:
            g_max -= 1
        h = None if self.stop_after is None else max(self.stop_after, g_max + 1)
        obs = math.nan
        parts: list[npt.NDArray[np.float64]] = []
        above = run = 0
        stopped = False
        for b in range(len(_BLOCKS)):
            wx, wy, fixed = splits.block(b)
            stats = fixed + 2 * np.einsum("ij,ij->i", wx @ kxy, wy) + np.einsum("ij,ij->i", wy @ kyy, wy)
            if b == 0:
                obs, stats = float(stats[0]), stats[1:]
            parts.append(stats)
            run += stats.size
            if h is not None:
                hits = np.flatnonzero(stats >= obs)
                if above + hits.size >= h:
                    # the h-th one: Besag-Clifford's p is h over the permutations run so far
                    last = int(hits[h - above - 1])
                    parts[-1] = stats[: last + 1]
                    run += last + 1 - stats.size
                    stopped = True
                    break
                above += hits.size
            if run >= total:
                break
        null = np.concatenate(parts)
        if stopped:
            # Besag-Clifford's h / L, and at least what the full test would say knowing only
            # that h of its permutations reach the statistic (so never under alpha here)
            assert h is not None
            p = max(h / run, (1 + h) / (1 + total))
        else:
            p = float((1 + np.sum(null >= obs)) / (1 + null.size))
        threshold = float(np.quantile(null, 1 - self.alpha))
        # stopped: more permutations reached the observed statistic than the full test allows
        # for a rejection, so it does not reject (whatever h / L comes to)
        drift = not stopped and p < self.alpha
        return DriftResult(
            "mmd",
            obs,
            threshold,
            p,
            drift,
            "joint_distribution_shift" if drift else None,
            n_reference=m,
            n_current=n,
            details={"permutations_run": int(null.size), "permutations": int(total)},
        )


# Rows of permutation weights per block: the observed split and 15 permutations, then doubling
# (a sequential test mostly stops in the first one or two; the full test runs them all).
_BLOCKS = (16, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class _Splits:
    """The observed split (row 0) and the permuted ones of a window of ``m + n`` rows, drawn
    from ``rng`` block by block as a test asks for them, each cut into reference and window
    parts with its Kxx term. ``rng`` is seeded afresh per window and has only drawn the
    subsample, so windows of the same number of rows get the same permutations: they are kept
    per window size and drawn once."""

    def __init__(self, permutations: int, m: int, n: int, rng: np.random.Generator, kxx: Any) -> None:
        if permutations + 1 > sum(_BLOCKS):
            raise ValueError(f"permutations={permutations} is more than {sum(_BLOCKS) - 1}; use fewer")
        self.total, self.m, self.n, self.rng, self.kxx = permutations, m, n, rng, kxx
        self.base = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
        self.blocks: list[tuple[Any, Any, Any]] = []
        self.drawn = 0  # rows of weights drawn (the observed one included)

    def block(self, b: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        while len(self.blocks) <= b:
            rows = min(_BLOCKS[len(self.blocks)], self.total + 1 - self.drawn)
            w = np.empty((max(rows, 0), self.m + self.n))
            for i in range(w.shape[0]):
                w[i] = self.base if self.drawn + i == 0 else self.base[self.rng.permutation(self.m + self.n)]
            self.drawn += w.shape[0]
            wx, wy = w[:, : self.m], w[:, self.m :]
            self.blocks.append((wx, wy, np.einsum("ij,ij->i", wx @ self.kxx, wx)))
        return self.blocks[b]
