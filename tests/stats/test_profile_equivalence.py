"""The fast profile (one sort per column, sketch by binary search, schema and multivariate
sample from the profile's own figures) stores what the original algorithm stored.

The original algorithm is kept here, slow and plain, as the reference: it sorted the finite
values, listed every run for the atoms, took mean and std with numpy, bucketed every value for
the sketch, scanned each column again for the schema, and standardised the whole table for the
multivariate sample.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from infersight.stats.columns import clean_column, column_parts, to_columns
from infersight.stats.reference import (
    ATOM_MIN_SHARE,
    MAX_ATOMS,
    N_BINS,
    PSI_LEVELS,
    QUANTILES,
    NumericSummary,
    Reference,
    sorted_quantile,
)
from infersight.stats.schema import Schema
from infersight.stats.sketch import ExpHistogram


def old_atoms(xs):
    if xs.size == 0:
        return xs
    starts = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1]]))
    if starts.size <= MAX_ATOMS:
        return xs[starts]
    counts = np.diff(np.append(starts, xs.size))
    heavy = np.flatnonzero(counts >= max(2, math.ceil(ATOM_MIN_SHARE * xs.size)))
    if heavy.size > MAX_ATOMS:
        heavy = heavy[np.argsort(-counts[heavy], kind="stable")[:MAX_ATOMS]]
    return np.sort(xs[starts[heavy]])


def old_summary(values):
    xs = np.sort(np.asarray(values, dtype=np.float64))
    n = int(xs.size)
    if n == 0:
        return NumericSummary.from_values(np.zeros(0)).to_dict()
    edges = np.unique(sorted_quantile(xs, np.linspace(0.0, 1.0, N_BINS + 1)))
    psi_edges = np.unique(sorted_quantile(xs, np.asarray(PSI_LEVELS)))
    edges = np.union1d(np.union1d(edges, psi_edges), old_atoms(xs))
    return NumericSummary(
        count=n,
        min=float(xs[0]),
        max=float(xs[-1]),
        mean=float(xs.mean()),
        std=float(xs.std(ddof=1)) if n > 1 else 0.0,
        quantiles={f"p{int(round(q * 100)):02d}": float(v) for q, v in zip(QUANTILES, sorted_quantile(xs, QUANTILES))},
        edges=edges,
        cum=np.searchsorted(xs, edges, side="right").astype(np.int64),
        psi_edges=psi_edges,
        sketch=ExpHistogram.from_values(xs),
        below=np.searchsorted(xs, edges, side="left").astype(np.int64),
    ).to_dict()


def old_numeric_profile(raw):
    # What is missing, and of which kind, is the feature model's (stats.columns) to say; the
    # summary of the numbers it keeps is what the original algorithm computed.
    parts = column_parts(raw)
    return parts.missing, old_summary(parts.numbers)


def old_reference_sample(numeric, rows=500, components=10, seed=0):
    names = list(numeric)
    m = np.column_stack([np.asarray(numeric[n], np.float64) for n in names])
    m = np.where(np.isfinite(m), m, np.nan)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if np.isnan(m).all(axis=0).any() else _nothing():
        mean = np.nanmean(m, axis=0)
        scale = np.nanstd(m, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.where(~np.isfinite(scale) | (scale == 0), 1.0, scale)
    z = np.nan_to_num((m - mean) / scale)
    rng = np.random.default_rng(seed)
    fit_rows = z[rng.choice(z.shape[0], min(z.shape[0], 20_000), replace=False)]
    k = min(components, len(names))
    _, _, vt = np.linalg.svd(fit_rows - fit_rows.mean(axis=0), full_matrices=False)
    comp = vt[:k]
    sample = z[rng.choice(z.shape[0], min(z.shape[0], rows), replace=False)] @ comp.T
    return {"mean": mean, "scale": scale, "components": comp, "sample": sample}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def awkward_table(n=30_000, seed=3):
    """Ties, atoms, NaN/Inf/None, integers, clip bounds, rounded prices, a constant, -0.0."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(5, 2, n)
    normal[rng.random(n) < 0.03] = np.nan
    normal[rng.random(n) < 0.002] = np.inf
    normal[rng.random(n) < 0.002] = -np.inf
    clipped = np.clip(rng.normal(0, 1, n), -1.0, 1.0)  # 16% at each bound
    prices = np.round(rng.lognormal(3, 1, n), 2)
    counts = rng.poisson(1.5, n).astype(np.float64)
    many_ints = rng.integers(-5000, 5000, n).astype(np.float64)  # > 256 distinct whole numbers
    heavy_tail = np.where(rng.random(n) < 0.3, 7.0, rng.standard_cauchy(n))  # one heavy atom, wide range
    zeros = np.where(rng.random(n) < 0.5, -0.0, np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n)))
    constant = np.full(n, 2.5)
    powers = 2.0 ** rng.integers(-20, 20, n) * np.where(rng.random(n) < 0.5, 1, -1)  # bucket boundaries
    with_none = np.empty(n, dtype=object)
    with_none[:] = np.round(rng.normal(size=n), 1).tolist()
    with_none[rng.random(n) < 0.05] = None
    rare = np.where(rng.random(n) < 0.001, "rare", rng.choice(np.array(["a", "b", "c"], dtype=object), n)).astype(
        object
    )
    return {
        "normal": normal,
        "clipped": clipped,
        "prices": prices,
        "counts": counts,
        "many_ints": many_ints,
        "heavy_tail": heavy_tail,
        "zeros": zeros,
        "constant": constant,
        "powers": powers,
        "with_none": with_none,
        "all_nan": np.full(n, np.nan),
        "rare": rare,
        "flag": rng.random(n) < 0.2,
    }


def assert_same_profile(ref, cols, n):
    numeric = {}
    for name, f in ref.features.items():
        if f.kind != "numeric":
            continue
        missing, summary = old_numeric_profile(cols[name])
        assert f.missing == missing, name
        got = f.numeric.to_dict()
        sketch_got, sketch_old = got.pop("sketch"), summary.pop("sketch")
        assert got == summary, name  # bins, quantiles, min/max/mean/std: bit for bit
        assert ExpHistogram.from_dict(sketch_got) == ExpHistogram.from_dict(sketch_old), name
        assert sketch_got["sum"] == pytest.approx(sketch_old["sum"], rel=1e-12, nan_ok=True), name
        numeric[name] = clean_column(cols[name], "numeric")
    kinds = {k: f.kind for k, f in ref.features.items()}
    assert ref.schema == Schema.infer(cols, kinds=kinds, model=ref.model), "schema"
    if len(numeric) >= 2:
        old = old_reference_sample(numeric)
        mv = ref.multivariate
        assert mv["columns"] == list(numeric)
        # mean/scale come from the profile's (sorted-order) sums: equal to rounding
        for key in ("mean", "scale", "components", "sample"):
            np.testing.assert_allclose(np.asarray(mv[key]), old[key], rtol=1e-9, atol=1e-9, err_msg=key)


def test_profile_equals_the_original_algorithm_on_awkward_columns():
    cols, n = to_columns(awkward_table())
    ref = Reference.from_data(cols, model="m")
    assert ref.features["with_none"].missing["null"] > 0 and ref.features["normal"].missing["inf"] > 0
    assert_same_profile(ref, cols, n)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_does_not_change_the_profile(threads):
    cols = awkward_table(5000, seed=4)
    a = Reference.from_data(cols, model="m", threads=threads).to_dict()
    b = Reference.from_data(cols, model="m", threads=1).to_dict()
    a.pop("created_at"), b.pop("created_at")
    assert a == b


def test_records_with_absent_keys_and_small_tables():
    rows = [{"a": float(i % 7), "b": i * 0.5} for i in range(300)] + [{"b": 1.0}, {"a": None, "b": np.nan}]
    cols, n = to_columns(rows)
    ref = Reference.from_data(rows, model="m")
    assert ref.features["a"].missing["absent"] == 1 and not ref.schema.features["a"].required
    assert_same_profile(ref, cols, n)
    for tiny in (
        {"x": np.array([1.0]), "y": np.array([np.nan])},
        {"x": np.array([3.0, 3.0]), "y": np.array([-1.0, 4.0])},
    ):
        assert_same_profile(Reference.from_data(tiny, model="m"), tiny, 1)


@pytest.mark.parametrize("seed", range(6))
def test_sorted_sketch_equals_the_per_value_sketch_on_bucket_boundaries(seed):
    rng = np.random.default_rng(seed)
    scale = [16.0, 4.0, 1.0, 0.25, 1024.0, 3.0][seed]
    b = np.exp2(np.arange(-200, 200) / scale)
    near = np.concatenate([b, np.nextafter(b, 0), np.nextafter(b, np.inf), np.repeat(b[::7], 5)])
    spread = np.exp2(rng.uniform(-2, 2, 5000) * 10 / scale)
    for x in (np.concatenate([near, -near]), near, -near, spread, np.concatenate([spread, -near, np.zeros(3)])):
        xs = np.sort(x)
        got = ExpHistogram.from_sorted(xs)
        assert got.positive.counts.sum() == (xs > 0).sum() and got.negative.counts.sum() == (xs < 0).sum()
        try:
            want = ExpHistogram.from_values(xs)
        except ValueError:
            continue  # see per_value_sketch_is_sound
        if per_value_sketch_is_sound(want, xs):
            assert got.to_dict() == want.to_dict()


def per_value_sketch_is_sound(s, xs):
    """The per-value mapping puts a value one ulp under a power of two far from 1 one bucket
    above the power itself. When that value is a sign's smallest or largest magnitude,
    ``from_values`` sizes the sign's buckets from it and the power of two falls outside: it
    raises (bincount of a negative slot) or counts the value under the other sign. The sorted
    path places it by the same mapping within the right sign; those batches are not compared."""
    return s.positive.counts.sum() == (xs > 0).sum() and s.negative.counts.sum() == (xs < 0).sum()


def test_sorted_sketch_edge_values():
    for x in ([0.0], [-0.0, 0.0, 1.0], [5e-324, 1e-310, 2.2250738585072014e-308, 1.0, 1.7e308], [-3.0], [1e300, 2e300]):
        xs = np.sort(np.asarray(x, np.float64))
        assert ExpHistogram.from_sorted(xs).to_dict() == ExpHistogram.from_values(xs).to_dict()
    assert ExpHistogram.from_sorted(np.zeros(0)).count == 0


def test_numeric_summary_from_column_counts_nan_and_inf():
    x = np.array([np.nan, 3.0, -np.inf, 1.0, np.inf, np.nan, 2.0, np.inf])
    s, nan, inf = NumericSummary.from_column(x)
    assert (nan, inf) == (2, 3) and s.count == 3 and s.min == 1.0 and s.max == 3.0
    assert s.to_dict() == NumericSummary.from_values(np.array([1.0, 2.0, 3.0])).to_dict()
    s, nan, inf = NumericSummary.from_column(np.full(4, np.nan))
    assert (s.count, nan, inf) == (0, 4, 0)


@pytest.fixture(params=["c", "numpy"])
def std_path(request, monkeypatch):
    """The std both ways: the C extension's squared_deviations, and the numpy blocks it follows."""
    from infersight.stats import reference

    if request.param == "numpy":
        monkeypatch.setattr(reference, "_c_squared_deviations", None)
    elif reference._c_squared_deviations is None:
        pytest.skip("the C extension is not built (or INFERSIGHT_PURE_PYTHON=1)")
    return request.param


@pytest.mark.parametrize("n", [2, 9, 128, 129, 32_768, 32_769, 65_543, 100_001, 1_000_000])
def test_std_in_blocks_is_numpys_bit_for_bit(n, std_path):
    # Sizes on both sides of the pairwise sum's block of 128 and of the scratch block, and
    # the bench's column length; heavy tails make a misplaced addition show in the last bits.
    rng = np.random.default_rng(n)
    for xs in (
        np.sort(rng.standard_cauchy(n)),
        np.sort(rng.lognormal(3, 2, n)),
        np.sort(np.round(rng.normal(size=n), 2)),
    ):
        s = NumericSummary.from_sorted(xs)
        assert s.std == float(xs.std(ddof=1))
        assert s.mean == float(xs.mean())


def test_std_is_numpys_bit_for_bit_at_every_small_size_and_odd_value(std_path):
    # Every length up to three blocks of 128 and past the first halving cuts (multiples of 8
    # and the values either side), values of very different magnitudes (a sum whose order
    # shows in its last bits), ties, signed zeros and subnormals; a view into a larger array.
    rng = np.random.default_rng(21)
    pool = np.concatenate(
        [
            rng.standard_cauchy(400) * 1e6,
            rng.normal(size=300),
            np.round(rng.lognormal(2, 1, 200), 2),
            [-0.0, 0.0, 5e-324, -5e-324, 1e-300, 1e150, -1e150],
        ]
    )
    for n in [*range(2, 400), 1023, 1024, 1025, 2047, 2056, 4100]:
        xs = np.sort(rng.choice(pool, n))
        s = NumericSummary.from_sorted(xs)
        assert s.std == float(xs.std(ddof=1)), n
    big = np.sort(rng.lognormal(0, 3, 50_000))
    for lo, hi in ((0, 50_000), (3, 49_999), (17, 40_017)):
        part = big[lo:hi]  # contiguous, not at the start of its buffer
        assert NumericSummary.from_sorted(part).std == float(part.std(ddof=1)), (lo, hi)


def test_squared_deviations_refuses_what_is_not_float64():
    from infersight.stats import reference

    c = reference._c_squared_deviations
    if c is None:
        pytest.skip("the C extension is not built (or INFERSIGHT_PURE_PYTHON=1)")
    with pytest.raises(TypeError, match="float64"):
        c(np.arange(10, dtype=np.float32), 1.0)
    with pytest.raises(TypeError, match="2 arguments"):
        c(np.arange(10.0))
    assert c(np.zeros(0), 0.0) == 0.0


def test_edges_are_numpys_distinct_values_with_signed_zeros():
    xs = np.sort(np.array([-0.0, 0.0, -0.0, 0.0, 1.0, 1.0, 2.0] * 40))
    s = NumericSummary.from_sorted(xs)
    levels = np.linspace(0.0, 1.0, N_BINS + 1)
    edges = np.union1d(
        np.union1d(np.unique(sorted_quantile(xs, levels)), np.unique(sorted_quantile(xs, PSI_LEVELS))), [0.0, 1.0, 2.0]
    )
    assert s.edges.tolist() == edges.tolist()
    assert [math.copysign(1, e) for e in s.edges] == [math.copysign(1, e) for e in edges]
