"""The sketch must equal the OTel SDK's own exponential histogram and merge exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.stats.sketch import ExpHistogram
from support.otel import otel_point


def _trim(counts):
    counts = list(counts)
    while counts and counts[-1] == 0:
        counts.pop()
    return counts


def assert_same_as_otel(values, max_size=160):
    p = otel_point(values, max_size)
    s = ExpHistogram.from_values(np.asarray(values, dtype=float), max_size=max_size)
    pos = s.positive.trimmed()
    assert (s.scale, s.count, s.zero_count) == (p.scale, p.count, p.zero_count)
    assert pos.counts.tolist() == _trim(p.positive.bucket_counts)
    if pos.counts.size:
        assert pos.offset == p.positive.offset
    assert math.isclose(s.sum, p.sum, rel_tol=1e-9, abs_tol=1e-12)
    assert (s.min, s.max) == (p.min, p.max)


positive_floats = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(positive_floats, min_size=1, max_size=200), st.sampled_from([4, 20, 160]))
def test_buckets_equal_otel_sdk(values, max_size):
    assert_same_as_otel(values, max_size)


@pytest.mark.parametrize("seed", range(10))
def test_buckets_equal_otel_sdk_on_typical_distributions(seed):
    rng = np.random.default_rng(seed)
    for values in (
        np.abs(rng.normal(0, 10 ** rng.uniform(-3, 3), 500)),
        rng.lognormal(0, rng.uniform(0.1, 5), 500),
        rng.integers(0, 50, 500).astype(float),
        np.exp(rng.uniform(-300, 300, 200)),
        np.array([2.0**k for k in range(-20, 20)]),  # exact powers of two are special-cased
    ):
        assert_same_as_otel(values)


finite = st.floats(min_value=-1e200, max_value=1e200, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=150), st.lists(finite, max_size=150), st.sampled_from([8, 160]))
def test_merge_equals_sketch_of_union(a, b, max_size):
    sa = ExpHistogram.from_values(a, max_size=max_size)
    sb = ExpHistogram.from_values(b, max_size=max_size)
    union = ExpHistogram.from_values(a + b, max_size=max_size)
    merged = sa.merge(sb)
    assert merged == union
    assert sb.merge(sa) == union
    assert merged.count == merged.zero_count + merged.positive.counts.sum() + merged.negative.counts.sum()


def test_negative_values_mirror_positive_ones():
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 2, 1000)
    pos = ExpHistogram.from_values(x)
    neg = ExpHistogram.from_values(-x)
    assert neg.scale == pos.scale
    assert neg.negative.offset == pos.positive.offset
    assert neg.negative.counts.tolist() == pos.positive.counts.tolist()
    assert neg.quantile(0.5) == pytest.approx(-pos.quantile(0.5))


def test_non_finite_values_are_left_out():
    s = ExpHistogram.from_values([1.0, math.nan, math.inf, -math.inf, 0.0])
    assert (s.count, s.zero_count, s.sum) == (2, 1, 1.0)


def test_quantiles_within_bucket_error():
    rng = np.random.default_rng(0)
    x = rng.lognormal(3, 1, 20_000)
    s = ExpHistogram.from_values(x)
    rel = 2 ** (2.0**-s.scale) - 1
    for q in (0.01, 0.5, 0.9, 0.99):
        assert s.quantile(q) == pytest.approx(np.quantile(x, q), rel=2 * rel + 1e-3)


def test_dict_round_trip_and_corrupt_input():
    s = ExpHistogram.from_values([-3.0, 0.0, 0.5, 7.0])
    assert ExpHistogram.from_dict(s.to_dict()) == s
    bad = s.to_dict()
    bad["count"] = 99
    with pytest.raises(ValueError, match="count 99"):
        ExpHistogram.from_dict(bad)
    with pytest.raises(ValueError, match="expected keys"):
        ExpHistogram.from_dict({"positive": {}})


def test_merge_all_of_many_windows():
    rng = np.random.default_rng(5)
    parts = [rng.normal(100, 15, 300) for _ in range(24)]
    merged = ExpHistogram.merge_all(ExpHistogram.from_values(p) for p in parts)
    assert merged == ExpHistogram.from_values(np.concatenate(parts))
    assert ExpHistogram.merge_all([]).count == 0


mixed = st.one_of(finite, st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, 2.0, 0.5]))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.data())
def test_from_matrix_columns_summarise_their_finite_values(n, k, data):
    X = np.array(data.draw(st.lists(st.lists(mixed, min_size=k, max_size=k), min_size=n, max_size=n)))
    sketches = ExpHistogram.from_matrix(X)
    for j, s in enumerate(sketches):
        col = X[:, j][np.isfinite(X[:, j])]
        assert s.count == col.size
        assert s.zero_count == int(np.count_nonzero(col == 0))
        if col.size:
            assert (s.min, s.max) == (col.min(), col.max())
            assert math.isclose(s.sum, col.sum(), rel_tol=1e-9, abs_tol=1e-12 * max(abs(col).max(), 1) * col.size)
        assert s.positive.counts.sum() == np.count_nonzero(col > 0)
        assert s.negative.counts.sum() == np.count_nonzero(col < 0)
        # bucketing a column alone or inside a matrix is the same
        assert s == ExpHistogram.from_matrix(X[:, j : j + 1])[0]
