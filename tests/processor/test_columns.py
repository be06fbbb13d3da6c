"""The columnar ingest path equals the point-by-point one: same sketches, same windows, same rejects."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import ExponentialHistogramDataPoint

from infersight.processor.ingest.columns import bucket_counts, decode_varints, merge_groups, run_totals
from infersight.processor.ingest.decode import decode_metrics, decode_metrics_light, parse_request
from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.screen import screen
from infersight.stats.sketch import ExpHistogram
from support.merging import padded

Buckets = ExponentialHistogramDataPoint.Buckets


def request(points: list[tuple[ExpHistogram, dict[str, str], int]], *, drop_min: bool = False) -> bytes:
    """An ExportMetricsServiceRequest of delta ``ml.feature.value`` points (sketch, attributes, time)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc"
    eh = rm.scope_metrics.add().metrics.add(name="ml.feature.value").exponential_histogram
    eh.aggregation_temporality = 1
    for s, attrs, t in points:
        dp = eh.data_points.add(
            start_time_unix_nano=t - 10**9,
            time_unix_nano=t,
            count=s.count,
            sum=s.sum,
            scale=s.scale,
            zero_count=s.zero_count,
        )
        if s.count and not drop_min:
            dp.min, dp.max = s.min, s.max
        for sign in ("positive", "negative"):
            b = getattr(s, sign)
            if b.counts.size:
                getattr(dp, sign).offset = b.offset
                getattr(dp, sign).bucket_counts.extend(b.counts.tolist())
        for k, v in attrs.items():
            dp.attributes.add(key=k).value.string_value = v
    return req.SerializeToString()


def both_ways(body: bytes, sizes=(60, 3600)):
    """Point by point, and columnar (from the parsed message and from the light view of the
    bytes, which must agree): decoded and aggregated."""
    msg = parse_request("metrics", body)
    slow = screen("metrics", decode_metrics(msg))
    fast = screen("metrics", decode_metrics(msg, columnar=True))
    light = decode_metrics_light(body)
    if light is None:
        assert fast.size == 0
    else:
        light = screen("metrics", light)
        assert light.size == fast.size and light.rejected == fast.rejected
        assert sorted(light.errors) == sorted(fast.errors)
        assert_same_windows(
            aggregate(light.points, [], [], sizes, light.columns), aggregate(fast.points, [], [], sizes, fast.columns)
        )
    a = aggregate(slow.points, [], [], sizes)
    b = aggregate(fast.points, [], [], sizes, fast.columns)
    return slow, fast, a, b


def assert_same_windows(a, b) -> None:
    assert a.windows.keys() == b.windows.keys()
    for key, ws in a.windows.items():
        assert ws.sketches.keys() == b.windows[key].sketches.keys(), key
        for name, s in ws.sketches.items():
            got = b.windows[key].sketches[name]
            assert got == s, (key, got, s)
            assert got.max_size == s.max_size and got.min == s.min and got.max == s.max


values = st.lists(
    st.one_of(
        st.floats(-1e12, 1e12, allow_nan=False), st.just(0.0), st.floats(1e-300, 1e-250), st.floats(1e200, 1e300)
    ),
    min_size=0,
    max_size=60,
)


@given(
    st.lists(
        st.tuples(values, st.integers(0, 3), st.integers(0, 2), st.sampled_from([4, 20, 160])), min_size=1, max_size=25
    )
)
@settings(max_examples=150, deadline=None)
def test_columnar_windows_equal_point_by_point_windows(spec):
    t0 = 1_700_000_000 * 10**9
    pts = []
    for vals, feature, minute, max_size in spec:
        s = ExpHistogram.from_values(np.asarray(vals, float), max_size=max_size)
        pts.append(
            (
                s,
                {"ml.model.name": "m", "ml.model.version": "1", "ml.feature.name": f"f{feature}"},
                t0 + minute * 60 * 10**9,
            )
        )
    slow, fast, a, b = both_ways(request(pts))
    assert fast.size == slow.size and fast.rejected == slow.rejected
    assert_same_windows(a, b)


def test_points_without_min_max_or_with_bad_counts_take_the_slow_path_or_are_rejected():
    rng = np.random.default_rng(3)
    s = ExpHistogram.from_values(np.concatenate([rng.lognormal(0, 2, 100), -rng.lognormal(0, 2, 50), [0.0]]))
    attrs = {"ml.model.name": "m", "ml.feature.name": "f"}
    t = 1_700_000_000 * 10**9
    _, fast, a, b = both_ways(request([(s, attrs, t)], drop_min=True))
    assert fast.columns == [] and len(fast.points) == 1
    assert len(decode_metrics_light(request([(s, attrs, t)], drop_min=True)).points) == 1
    assert_same_windows(a, b)
    bad = s.copy()
    bad.count += 1
    slow, fast, a, b = both_ways(request([(bad, attrs, t), (s, attrs, t), (s, {"ml.feature.name": "f"}, t)]))
    assert fast.rejected == slow.rejected == 2 and fast.size == slow.size == 1
    assert sorted(fast.errors) == sorted(slow.errors)
    assert_same_windows(a, b)


@given(
    st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.lists(st.integers(0, 2**62 - 1), max_size=50)), max_size=20)
)
def test_bucket_bytes_decode_like_protobuf(messages):
    blobs = [Buckets(offset=off, bucket_counts=counts).SerializeToString() for off, counts in messages]
    offsets, lens, counts = bucket_counts(blobs)
    assert offsets.tolist() == [off if counts else off for off, counts in messages]
    assert lens.tolist() == [len(c) for _, c in messages]
    assert counts.tolist() == [x for _, c in messages for x in c]
    if blobs and blobs[-1]:
        assert decode_varints(np.frombuffer(blobs[-1], np.uint8)).size >= len(messages[-1][1])


def test_bucket_bytes_in_another_layout_are_left_to_the_slow_path():
    unpacked = bytes([0x10, 5, 0x10, 7])  # counts as separate fields: legal protobuf, not packed
    trailing = Buckets(offset=3, bucket_counts=[1, 2]).SerializeToString() + bytes([0x18, 1])  # unknown field
    counts_first = Buckets(bucket_counts=[1]).SerializeToString() + bytes([0x08, 6])
    huge = Buckets(offset=-2, bucket_counts=[1, 2**63]).SerializeToString()  # beyond int64 sketches
    for blob in (unpacked, trailing, counts_first, huge):
        assert bucket_counts([blob]) is None
        assert bucket_counts([Buckets(offset=1, bucket_counts=[4]).SerializeToString(), blob]) is None


def test_windows_serialised_together_read_as_serialised_one_by_one():
    from infersight.processor.storage.codec import decode_window, encode_window, encode_windows
    from infersight.stats.windows import WindowStats

    rng = np.random.default_rng(2)
    items = []
    for i in range(120):
        v = np.concatenate(
            [
                rng.lognormal(3, rng.uniform(0.1, 5), int(rng.integers(0, 2000))),
                -rng.lognormal(0, 1, int(rng.integers(0, 70_000 if i % 40 == 0 else 50))),
            ]
        )
        ws = WindowStats(
            {"value": ExpHistogram.from_values(v)} if i % 7 else {}, {}, {"missing": {"nan": i}} if i % 3 else {}
        )
        items.append(ws)
    texts = encode_windows(items)
    assert texts == [encode_window(ws) for ws in items]
    assert [decode_window(t).sketches for t in texts] == [ws.sketches for ws in items]


@given(st.lists(st.lists(st.integers(-(2**62), 2**62 - 1), max_size=5), max_size=20))
@settings(max_examples=200, deadline=None)
def test_run_totals_are_the_differences_of_the_running_sum(runs):
    # what the count check used before: the running sum's difference at each run's ends
    # (int64 wraps alike both ways)
    values = np.array([v for r in runs for v in r], np.int64)
    lens = np.array([len(r) for r in runs], np.int64)
    csum = np.concatenate([[0], np.cumsum(values)]).astype(np.int64)
    first = np.cumsum(lens) - lens
    with np.errstate(over="ignore"):
        want = csum[first + lens] - csum[first]
    assert run_totals(values, lens).tolist() == want.tolist()


@given(
    st.lists(
        st.tuples(values, st.integers(0, 4), st.sampled_from([4, 20, 160]), st.sampled_from([0, 0, 0, 1, 2, 3])),
        max_size=25,
    ),
    st.integers(1, 6),
)
@settings(max_examples=150, deadline=None)
def test_merge_groups_without_zero_buckets_to_skip_equals_the_general_path(spec, n_groups):
    # sketches as sent (some padded with zero buckets at the ends, some not): merge_groups
    # with the check for runs that have nothing to trim, and forced down the general path
    # that finds every run's non-zero span, gives the same sketches
    import infersight.processor.ingest.columns as columns_module

    pts = []
    t0 = 1_700_000_000 * 10**9
    for vals, group, max_size, pad in spec:
        s = ExpHistogram.from_values(np.asarray(vals, float), max_size=max_size)
        pts.append((padded(s, pad % 2, pad // 2), {"ml.model.name": "m", "ml.feature.name": f"f{group}"}, t0))
    if not pts:
        return
    cols = decode_metrics(parse_request("metrics", request(pts)), columnar=True).columns
    if not cols:
        return
    c = cols[0]
    group = np.arange(len(c), dtype=np.int64) % n_groups
    got = merge_groups(group, n_groups, c)
    real = columns_module.trimmed_runs
    columns_module.trimmed_runs = lambda *_: False
    try:
        want = merge_groups(group, n_groups, c)
    finally:
        columns_module.trimmed_runs = real
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None and w is not None:
            assert g == w and g.max_size == w.max_size and g.scale == w.scale


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["age", "income", "", None]),
            st.sampled_from([None, "2", ""]),
            st.sampled_from([None, "region=eu"]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([{"ml.model.name": "m"}, {"ml.model.name": "m", "ml.model.version": "3"}, {}]),
)
@settings(max_examples=150, deadline=None)
def test_a_column_screened_at_once_is_screened_entry_by_entry(entries, resource):
    # some entries without a feature name or a model (problems), some sliced, some versioned;
    # the column's lookup (first time and from the cache) is each entry's lookup
    from infersight.processor.ingest.columns import SketchColumns
    from infersight.processor.ingest.screen import column_series, columns_series

    attrs, keys = [], []
    for name, version, slice_ in entries:
        a = {"ml.model.name": "m2"} if name == "" else {}
        if name:
            a["ml.feature.name"] = name
        if version is not None:
            a["ml.model.version"] = version
        if slice_ is not None:
            a["ml.slice"] = slice_
        attrs.append(a)
        keys.append(tuple(sorted(f"{k}={v}".encode() for k, v in a.items())))
    z = np.zeros(len(attrs), np.int64)
    c = SketchColumns(
        "ml.feature.value", resource, attrs, keys, np.arange(len(attrs)), z, z, z, z, z, z + 1.0, z + 1.0, z + 1.0,
        z, z, z, z, z[:0],
    )  # fmt: skip
    looked = [columns_series(c, a, k) for a, k in zip(attrs, keys)]
    want = ([found for _, found in looked], [why for why, _ in looked])
    first = column_series(c)
    assert first == want
    first[0].append("changed by the caller")
    assert column_series(c) == want
