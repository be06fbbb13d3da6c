"""Sketches of values at bucket boundaries, where the logarithm-based mapping is not monotone.

The float just below a power of two far from 1 maps (through ``log``) into the bucket above the
power of two's, which the OTel SDK's LogarithmMapping does too. Every sketch path must count
such batches as the slow per-value mapping below does: no crash, no lost or moved value.
"""

from __future__ import annotations

import math
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.logarithm_mapping import LogarithmMapping

from infersight.stats import sketch
from infersight.stats.sketch import DEFAULT_MAX_SCALE, MIN_SCALE, ExpHistogram
from support.otel import otel_point

MIN_NORMAL = 2.0**-1022
TINY = 5e-324  # the smallest subnormal


def slow_index(v: float, scale: int) -> int:
    """The OTel mapping of one positive finite value at a positive scale, value by value:
    powers of two exactly through ``math.frexp``, subnormals to the bucket below the smallest
    normal, everything else ``floor(log(v) * 2**scale / ln 2)`` with the C library's log."""
    if v <= MIN_NORMAL:
        return (-1022 << scale) - 1
    mantissa, exponent = math.frexp(v)  # v = mantissa * 2**exponent, mantissa in [0.5, 1)
    if mantissa == 0.5:
        return ((exponent - 1) << scale) - 1
    return min(math.floor(math.log(v) * math.ldexp(1.0 / math.log(2.0), scale)), (1024 << scale) - 1)


def slow_sketch(values: list[float], max_size: int = 160, max_scale: int = DEFAULT_MAX_SCALE) -> dict:
    """What a sketch of ``values`` holds, built value by value: each finite nonzero value
    mapped at ``max_scale``; the scale lowered until every sign's range of *those indices*
    fits in ``max_size`` buckets; indices shifted down to it and counted."""
    finite = [v for v in values if math.isfinite(v)]
    idx = {
        1: [slow_index(v, max_scale) for v in finite if v > 0],
        -1: [slow_index(-v, max_scale) for v in finite if v < 0],
    }
    change = 0
    for ix in idx.values():
        if ix:
            lo, hi = min(ix), max(ix)
            while (hi >> change) - (lo >> change) >= max_size and change < max_scale - MIN_SCALE:
                change += 1
    zeros = sum(1 for v in finite if v == 0)
    buckets = {}
    for sign, ix in idx.items():
        c = Counter(i >> change for i in ix)
        buckets[sign] = (min(c), [c.get(i, 0) for i in range(min(c), max(c) + 1)]) if c else (0, [])
    return {
        # an empty sketch keeps the maximum scale; an all-zero one has scale 0, as the SDK's
        "scale": max_scale if not finite else 0 if zeros == len(finite) else max_scale - change,
        "count": len(finite),
        "zero_count": zeros,
        "positive": buckets[1],
        "negative": buckets[-1],
    }


def as_slow(s: ExpHistogram) -> dict:
    pos, neg = s.positive.trimmed(), s.negative.trimmed()
    return {
        "scale": s.scale,
        "count": s.count,
        "zero_count": s.zero_count,
        "positive": (pos.offset if pos.counts.size else 0, pos.counts.tolist()),
        "negative": (neg.offset if neg.counts.size else 0, neg.counts.tolist()),
    }


def boundary_floats() -> st.SearchStrategy[float]:
    """Floats where mappings go wrong: powers of two (normal and subnormal) and their
    neighbours a few ulps away, values at and next to scale-20 boundaries, the ends of the
    float range, zeros; either sign."""
    power = st.integers(-1074, 1023).map(lambda k: math.ldexp(1.0, k))
    boundary = st.integers(-1021 << 20, 1023 << 20).map(lambda i: 2.0 ** (i / 2**20))
    ends = st.sampled_from([MIN_NORMAL, TINY, 2.2250738585072009e-308, 1.7976931348623157e308, 1.0, 0.0])
    near = st.tuples(st.one_of(power, boundary, ends), st.integers(-3, 3)).map(lambda t: _step(t[0], t[1]))
    magnitude = st.one_of(near, power, st.floats(min_value=0.0, max_value=1e308, allow_nan=False))
    return st.tuples(magnitude, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])


def _step(x: float, ulps: int) -> float:
    for _ in range(abs(ulps)):
        x = math.nextafter(x, math.inf if ulps > 0 else 0.0)
    return x


@pytest.mark.parametrize("k", [-1000, -500, -100, -30, 10, 30, 100, 500, 1000, 1023])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_power_of_two_and_the_float_below_it(k, sign):
    p = math.ldexp(1.0, k)
    below = math.nextafter(p, 0.0)
    for values in ([p, below], [below, p], [below, p, 2 * p if k < 1023 else p], [p / 2, below, p]):
        values = [sign * v for v in values]
        s = ExpHistogram.from_values(values)
        assert as_slow(s) == slow_sketch(values)
        assert ExpHistogram.from_sorted(np.sort(np.array(values))) == s
        assert s.count == len(values) == s.positive.counts.sum() + s.negative.counts.sum()


def test_the_float_below_a_power_of_two_sits_above_it_as_in_the_otel_sdk():
    p = 2.0**100
    assert slow_index(math.nextafter(p, 0.0), 20) == slow_index(p, 20) + 1  # what the fix is about
    mapping = LogarithmMapping(20)
    for v in (p, math.nextafter(p, 0.0), math.nextafter(p, math.inf), MIN_NORMAL, TINY, 3.0, 1.7976931348623157e308):
        assert slow_index(v, 20) == mapping.map_to_index(v)


@settings(max_examples=300, deadline=None)
@given(st.lists(boundary_floats(), min_size=1, max_size=60))
def test_the_reference_mapping_is_the_otel_sdks(values):
    mapping = LogarithmMapping(20)
    for v in values:
        if v != 0 and math.isfinite(v):
            assert slow_index(abs(v), 20) == mapping.map_to_index(abs(v))


@settings(max_examples=400, deadline=None)
@given(st.lists(boundary_floats(), min_size=1, max_size=80), st.sampled_from([2, 4, 20, 160]))
def test_every_sketch_path_counts_boundary_values_as_the_slow_mapping(values, max_size):
    want = slow_sketch(values, max_size)
    s = ExpHistogram.from_values(values, max_size=max_size)
    assert as_slow(s) == want
    finite = np.sort(np.array([v for v in values if math.isfinite(v)]))
    assert as_slow(ExpHistogram.from_sorted(finite, max_size=max_size)) == want
    # one column among others, and the feature-major form the SDK buffers
    X = np.column_stack([np.array(values), np.arange(len(values), dtype=float)])
    assert as_slow(ExpHistogram.from_matrix(X, max_size=max_size)[0]) == want
    sketches, nans = ExpHistogram.from_columns(np.ascontiguousarray(X.T), max_size=max_size)
    assert as_slow(sketches[0]) == want and nans.tolist() == [0, 0]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(-1000, 1000),
    st.lists(st.tuples(st.integers(-300, 300), st.integers(-3, 3)), min_size=1, max_size=40),
)
def test_narrow_boundary_batches_equal_the_otel_sdk(k, steps):
    """Around one power of two the sketch stays at a positive scale, where the OTel SDK's own
    histogram of the same values (recorded one by one, downscaling as it goes) is bucket for
    bucket the same: values on and a few ulps either side of the scale-20 boundaries there."""
    centre = math.ldexp(1.0, k)
    values = [centre, math.nextafter(centre, 0.0)] + [_step(centre * 2.0 ** (i / 2**20), u) for i, u in steps]
    p = otel_point(values)
    s = ExpHistogram.from_values(values)
    assert s.scale == p.scale > 0
    counts = list(p.positive.bucket_counts)
    while counts and counts[-1] == 0:
        counts.pop()
    assert (s.positive.offset, s.positive.counts.tolist()) == (p.positive.offset, counts)
    assert as_slow(s) == slow_sketch(values)


# -- the C extension's sketch is the numpy path's, index for index ----------------------------

REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
PURE = os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"


def c_and_python(columns: np.ndarray, max_size: int = 160) -> tuple[list, list, np.ndarray, np.ndarray]:
    """``from_columns`` of feature-major ``columns`` through the C extension, then through the
    numpy code alone."""
    c_path = sketch._c_sketch_rows
    if c_path is None:
        if REQUIRED and not PURE:
            pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
        pytest.skip("the C sketch is not in use")
    in_c, c_nans = ExpHistogram.from_columns(columns, max_size=max_size)
    sketch._c_sketch_rows = None
    try:
        in_numpy, numpy_nans = ExpHistogram.from_columns(columns, max_size=max_size)
    finally:
        sketch._c_sketch_rows = c_path
    return in_c, in_numpy, c_nans, numpy_nans


def assert_same(a: ExpHistogram, b: ExpHistogram) -> None:
    """Everything equal to the bit, but the sum: numpy's pairwise order is followed in C, yet
    numpy may add in another order on another machine."""
    da, db = a.to_dict(), b.to_dict()
    sa, sb = da.pop("sum"), db.pop("sum")
    assert da == db
    assert sa == sb or math.isclose(sa, sb, rel_tol=1e-12) or not (math.isfinite(sa) and math.isfinite(sb))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 5),
    st.data(),
    st.sampled_from([2, 4, 20, 160]),
)
def test_the_c_sketch_is_the_numpy_sketch_on_boundary_values(k, data, max_size):
    floats = st.one_of(boundary_floats(), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]))
    rows = data.draw(st.lists(st.lists(floats, min_size=k, max_size=k), min_size=1, max_size=60))
    columns = np.ascontiguousarray(np.array(rows, dtype=np.float64).T)
    in_c, in_numpy, c_nans, numpy_nans = c_and_python(columns, max_size)
    assert c_nans.tolist() == numpy_nans.tolist()
    for a, b in zip(in_c, in_numpy):
        assert_same(a, b)
    for j in range(k):  # and both are the slow per-value mapping's
        assert as_slow(in_c[j]) == slow_sketch([r[j] for r in rows], max_size)


@pytest.mark.parametrize("seed", range(4))
def test_the_c_sketch_is_the_numpy_sketch_on_many_values(seed):
    """Half a million values over the whole float range, either sign, a few whole numbers and
    non-finite ones among them: the C pass (numpy's log, the C library's near a boundary)
    gives every bucket the numpy path gives."""
    rng = np.random.default_rng(seed)
    n = 10_000
    columns = np.concatenate(
        [
            np.exp(rng.uniform(-744, 709, (20, n))),
            rng.normal(size=(10, n)) * 10.0 ** rng.uniform(-300, 300, (10, 1)),
            rng.integers(-1000, 1000, (10, n)).astype(float),
            rng.lognormal(0, 1, (10, n)),
        ]
    )
    columns[:20] *= rng.choice([-1.0, 1.0], (20, n))
    columns[5, ::97] = np.nan
    columns[6, ::89] = np.inf
    for max_size in (160, 20):
        in_c, in_numpy, c_nans, numpy_nans = c_and_python(columns, max_size)
        assert c_nans.tolist() == numpy_nans.tolist()
        for a, b in zip(in_c, in_numpy):
            assert_same(a, b)


def test_the_c_mapping_is_the_otel_sdks_at_each_scale_20_boundary_it_meets():
    """One value per column, so each sketch stays at scale 20 and its offset is the value's
    index: values on, and an ulp either side of, boundaries across the whole range."""
    rng = np.random.default_rng(11)
    i = rng.integers(-1021 << 20, 1023 << 20, 3000)
    at = 2.0 ** (i / 2**20)
    values = np.concatenate([at, np.nextafter(at, 0), np.nextafter(at, np.inf), 2.0 ** np.arange(-1074.0, 1024.0)])
    in_c, in_numpy, _, _ = c_and_python(values.reshape(-1, 1).copy())
    mapping = LogarithmMapping(20)
    for v, a, b in zip(values.tolist(), in_c, in_numpy):
        assert a.positive.offset == b.positive.offset == mapping.map_to_index(v)
