"""Windows stored as bytes: the binary form reads back as the window written, rows of every
form (binary, JSON text, JSON as bytes, an old store's JSON lists) merge in columns as
``WindowStats.merge_all`` merges them, the ingest path's packed rows are byte for byte what
``pack_windows`` writes, and a store written as JSON text by an older version opens, reads,
takes new rows and compacts (both engines)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.processor.ingest.decode import decode_metrics, parse_request
from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.screen import screen
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.codec import BINARY, HEADER, decode_window, encode_window, pack_windows
from infersight.processor.storage.merge import StoredRows
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats
from support.merging import assert_merged_like_merge_all, padded
from tests.processor.test_columns import request

SIZES = (60, 3600, 86400)
T0 = 1_700_000_000 - 1_700_000_000 % 86400  # a day boundary

values = st.lists(st.one_of(st.floats(-1e9, 1e9, allow_nan=False), st.just(0.0), st.floats(1e200, 1e300)), max_size=40)


def window(kind: int, vals: list[float], max_size: int, label: int, big: int) -> WindowStats:
    """A window of one of several shapes: one sketch (with counts wide or narrow, zero buckets
    at the ends, counters); two sketches and a histogram; an infinite sum; no sketch."""
    v = np.asarray(vals, float)
    s = ExpHistogram.from_values(np.repeat(v, big) if big > 1 else v, max_size=max_size)
    ws = WindowStats({"value": s})
    if label % 2:
        ws.add_count("missing", "nan", label)
    if kind == 1:
        ws.sketches["value"] = padded(s, 1, 2)
    if kind == 2:
        ws.sketches["duration"] = ExpHistogram.from_values(np.abs(v) + 1)
        ws.histograms["duration"] = ExplicitHistogram((0.1, 1.0), np.array([1, label, 0]), 1 + label, 0.5, 0.05, 0.9)
    if kind == 3 and s.count:
        ws.sketches["value"] = ExpHistogram(
            s.scale, s.zero_count, s.positive, s.negative, s.count, float("inf"), s.min, s.max, s.max_size
        )
    if kind == 4:
        ws.sketches.clear()
    return ws


window_spec = st.tuples(
    st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
    values,
    st.sampled_from([4, 20, 160]),
    st.integers(0, 5),
    st.sampled_from([1, 1, 300, 70_000]),  # counts needing 1, 2 or 4 bytes
)


@given(st.lists(window_spec, min_size=1, max_size=8))
@settings(max_examples=150, deadline=None)
def test_windows_read_back_from_their_stored_bytes(spec):
    windows = [window(*w) for w in spec]
    rows = pack_windows(windows)
    for ws, row in zip(windows, rows):
        assert isinstance(row, bytes)
        back = decode_window(row)
        assert back.sketches == ws.sketches and back.counters == ws.counters
        for name, s in ws.sketches.items():
            assert back.sketches[name].max_size == s.max_size
        assert {k: h.to_dict() for k, h in back.histograms.items()} == {
            k: h.to_dict() for k, h in ws.histograms.items()
        }
        one_sketch = len(ws.sketches) == 1 and not ws.histograms
        s = next(iter(ws.sketches.values()), None)
        binary = one_sketch and s is not None and s.count > 0 and np.isfinite([s.sum, s.min, s.max]).all()
        if binary:  # the binary form, about half the JSON text's size
            assert row[0] == BINARY and len(row) < len(encode_window(ws))
        else:  # everything else is the JSON text, as UTF-8
            assert row == encode_window(ws).encode()


@given(
    st.lists(
        st.tuples(window_spec, st.sampled_from(["binary", "text", "text-bytes", "lists"])), min_size=1, max_size=10
    ),
    st.data(),
)
@settings(max_examples=150, deadline=None)
def test_rows_of_every_form_merged_in_columns_equal_the_plain_merge(spec, data):
    rows: list[str | bytes] = []
    for w, form in spec:
        ws = window(*w)
        if form == "binary":
            rows.append(pack_windows([ws])[0])
        elif form == "text":
            rows.append(encode_window(ws))
        elif form == "text-bytes":  # a PostgreSQL store's JSON rows after the column became BYTEA
            rows.append(encode_window(ws).encode())
        else:  # before counts were packed
            d = {"s": {k: s.to_dict() for k, s in ws.sketches.items()}, "h": {}, "c": ws.counters}
            rows.append(json.dumps(d))
    groups = data.draw(
        st.lists(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=6), min_size=1, max_size=5)
    )
    assert_merged_like_merge_all(rows, groups)


def test_a_binary_row_that_does_not_add_up_or_is_cut_short_is_refused():
    good = pack_windows([WindowStats({"value": ExpHistogram.from_values([1.0, 2.0, 2.0])})])[0]
    head = np.frombuffer(good, HEADER, 1).copy()
    head["count"] = 9
    bad = head.tobytes() + good[HEADER.itemsize :]
    for row in (bad,):
        with pytest.raises(ValueError, match="corrupt"):
            decode_window(row)
        with pytest.raises(ValueError, match="corrupt"):
            StoredRows.parse([good, row]).merged([[0, 1]])
    for cut in (good[:-1], good[:10]):
        with pytest.raises(ValueError, match="corrupt"):
            decode_window(cut)
        with pytest.raises(ValueError, match="corrupt"):
            StoredRows.parse([good, cut])


@given(
    st.lists(
        st.tuples(values, st.integers(0, 3), st.integers(0, 2), st.sampled_from([4, 20, 160]), st.integers(0, 3)),
        min_size=1,
        max_size=25,
    )
)
@settings(max_examples=150, deadline=None)
def test_windows_ingest_packs_are_pack_windows_of_the_windows_it_folds(spec):
    assert_packs_are_pack_windows(spec)


@given(
    st.lists(
        st.tuples(values, st.integers(0, 3), st.integers(0, 2), st.sampled_from([4, 20, 160]), st.just(0)),
        min_size=1,
        max_size=25,
    )
)
@settings(max_examples=150, deadline=None)
def test_windows_ingest_packs_without_zero_buckets_at_the_ends_are_pack_windows_too(spec):
    # no point padded: every run already trimmed, the path that takes the counts as sent
    assert_packs_are_pack_windows(spec)


def assert_packs_are_pack_windows(spec: list[tuple[list[float], int, int, int, int]]) -> None:
    """Ingest's packed rows for these points (values, feature, minute, max_size, zero buckets
    padded at the ends) are ``pack_windows`` of the windows the plain fold makes."""
    t0 = 1_700_000_000 * 10**9
    pts = []
    for vals, feature, minute, max_size, pad in spec:
        s = ExpHistogram.from_values(np.asarray(vals, float), max_size=max_size)
        pts.append(
            (
                padded(s, pad % 2, pad // 2),  # zero buckets at the ends, as some exporters send
                {"ml.model.name": "m", "ml.model.version": "1", "ml.feature.name": f"f{feature}"},
                t0 + minute * 60 * 10**9,
            )
        )
    body = request(pts)
    plain = screen("metrics", decode_metrics(parse_request("metrics", body), columnar=True))
    packed = screen("metrics", decode_metrics(parse_request("metrics", body), columnar=True))
    a = aggregate(plain.points, [], [], (60,), plain.columns)
    b = aggregate(packed.points, [], [], (60,), packed.columns, packed=True)
    assert not b.windows.keys() & b.packed.keys()
    assert a.windows.keys() == b.windows.keys() | b.packed.keys()
    for key, row in b.packed.items():
        assert row == pack_windows([a.windows[key]])[0], key
    for key, ws in b.windows.items():  # several points in a window, or none with a count
        assert ws.sketches == a.windows[key].sketches
    alone = {
        k
        for k in a.windows
        if sum(1 for p in pts if p[2] // 10**9 // 60 * 60 == k.start and p[1]["ml.feature.name"] == k.name) == 1
    }
    assert {k for k in b.packed} == {k for k in alone if a.windows[k].sketches}


def test_packed_windows_need_base_windows_only():
    with pytest.raises(ValueError, match="base windows only"):
        aggregate([], [], [], (60, 3600), packed=True)


# what the stats table was before windows were stored as bytes (main at 036f1e3)
_OLD_STATS = """CREATE TABLE stats (
    id {id}, model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, start BIGINT NOT NULL, data TEXT NOT NULL, rolled INTEGER NOT NULL DEFAULT 1)"""


def test_a_store_written_as_json_text_opens_reads_takes_new_rows_and_compacts(store_url):
    rng = np.random.default_rng(5)
    old = [WindowStats({"value": ExpHistogram.from_values(rng.normal(5, 2, 30))}) for _ in range(90)]
    for ws in old[::7]:
        ws.add_count("missing", "nan", 2)
    rows = [("m", "1", FEATURE, "f", 60, T0 + 60 * i, encode_window(ws), 0) for i, ws in enumerate(old)]
    sql = "INSERT INTO stats (model, version, role, name, size, start, data, rolled) VALUES ({})"
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url[len("sqlite:///") :]) as conn:
            conn.execute(_OLD_STATS.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"))
            conn.executemany(sql.format(",".join("?" * 8)), rows)
    else:
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(_OLD_STATS.format(id="BIGSERIAL PRIMARY KEY"))
            conn.cursor().executemany(sql.format(",".join(["%s"] * 8)), rows)
    store = open_storage(store_url, SIZES)
    try:
        got, n = store.query("m", FEATURE, "f", T0, T0 + 86400)
        want = WindowStats.merge_all(old)
        assert n == 90 and got.sketches == want.sketches and got.counters == want.counters
        new = [WindowStats({"value": ExpHistogram.from_values(rng.normal(6, 2, 30))}) for _ in range(60)]
        for i, ws in enumerate(new):  # the old rows' second hour, then the next one
            store.write(WriteBatch({WindowKey("m", "1", FEATURE, "f", 60, T0 + 60 * (90 + i)): ws}))
        forms = {
            type(r[0]).__name__ + ("-binary" if r[0][:1] == b"\x01" else "")
            for r in store._read("SELECT data FROM stats")
        }
        assert forms == ({"str", "bytes-binary"} if store_url.startswith("sqlite") else {"bytes", "bytes-binary"})
        everything = WindowStats.merge_all(old + new)
        got, _ = store.query("m", FEATURE, "f", T0, T0 + 86400)
        assert got.sketches == everything.sketches and got.counters == everything.counters
        store.compact(None)
        got, n = store.query("m", FEATURE, "f", T0, T0 + 86400)
        assert n == 1 and got.sketches == everything.sketches and got.counters == everything.counters
        got, _ = store.query("m", FEATURE, "f", T0 + 3600, T0 + 7200)
        assert got.sketches == WindowStats.merge_all(old[60:] + new[:30]).sketches
        rolled = store._read("SELECT data FROM stats WHERE size > 60")
        assert len(rolled) == 4 and all(bytes(r[0])[:1] == b"\x01" for r in rolled)  # 3 hours and a day
    finally:
        store.close()


def test_late_rows_after_their_hour_and_day_were_rolled_up_add_to_both(store_url):
    """A day takes what the claimed rows added to its hours; where an hour was rolled up
    before, the late rows' own merge is what the day takes (not the hour's whole row again)."""
    store = open_storage(store_url, SIZES)
    rng = np.random.default_rng(6)
    written: dict[int, list[WindowStats]] = {}
    minutes = [*range(0, 130), 5, 70, 30, 200, 5, 1500, 61]
    for n, minute in enumerate(minutes):
        ws = WindowStats({"value": ExpHistogram.from_values(rng.lognormal(minute % 5, 1 + minute % 3, 40))})
        written.setdefault(minute, []).append(ws)
        key = WindowKey("m", "1", FEATURE, "f", 60, T0 + 60 * minute)
        store.write(WriteBatch({key: ws}))
        store.compact(None if n % 25 == 0 or n >= 130 else [key])
    store.compact(None)
    for lo, hi in ((0, 1440 * 2), (0, 60), (60, 120), (60, 180), (1440, 2880)):
        want = [ws for m, items in written.items() if lo <= m < hi for ws in items]
        got, _ = store.query("m", FEATURE, "f", T0 + 60 * lo, T0 + 60 * hi)
        assert got.sketches["value"] == WindowStats.merge_all(want).sketches["value"], (lo, hi)
    store.close()


@given(
    st.lists(st.tuples(st.integers(0, 4), st.lists(st.integers(0, 3), max_size=6)), min_size=1, max_size=12),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_runs_taken_as_sent_where_nothing_is_to_trim_are_the_trimmed_runs(runs_spec, data):
    # runs of bucket counts (offset, counts), some with zeros at the ends; where none has,
    # taking them as sent is what trimming gives
    from infersight.processor.ingest.columns import trimmed_runs
    from infersight.processor.ingest.fold import _trim_runs

    counts = np.array([c for _, cs in runs_spec for c in cs], np.int64)
    r_len = np.array([len(cs) for _, cs in runs_spec], np.int64)
    r_end = np.cumsum(r_len)
    r_start = r_end - r_len
    offs = np.array([o for o, _ in runs_spec], np.int64)
    runs = np.array(sorted(data.draw(st.sets(st.integers(0, len(runs_spec) - 1), min_size=1))), np.int64)
    t_off, t_len, got = _trim_runs(counts, r_start, r_end, offs, runs)
    # trimming by hand
    want_len, want_off, want = [], [], []
    for i in runs.tolist():
        cs = runs_spec[i][1]
        nz = [j for j, c in enumerate(cs) if c]
        want_len.append(nz[-1] - nz[0] + 1 if nz else 0)
        want_off.append(runs_spec[i][0] + nz[0] if nz else 0)
        want.extend(cs[nz[0] : nz[-1] + 1] if nz else [])
    assert t_len.tolist() == want_len and t_off.tolist() == want_off and got.tolist() == want
    nothing_to_trim = all(not cs or (cs[0] and cs[-1]) for _, cs in (runs_spec[i] for i in runs.tolist()))
    assert trimmed_runs(counts, r_start[runs], r_end[runs]) == nothing_to_trim
    if nothing_to_trim:
        assert t_len.tolist() == r_len[runs].tolist()
        assert t_off.tolist() == np.where(r_len[runs] > 0, offs[runs], 0).tolist()


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=30),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=4),
)
@settings(max_examples=200, deadline=None)
def test_packed_rows_placed_at_once_are_placed_as_one_by_one(new, packed_before, parts_before):
    # keys that repeat, keys packed already, keys with plain parts: the one-update path and
    # the loop give the same builder
    from infersight.processor.ingest.fold import _Builder, _place_each, _place_packed

    def key(f: int, minute: int) -> WindowKey:
        return WindowKey("m", "1", FEATURE, f"f{f}", 60, T0 + 60 * minute)

    def row(i: int) -> bytes:
        return pack_windows([WindowStats({"value": ExpHistogram.from_values([float(i), 2.0 * i + 1])})])[0]

    builders = []
    for place in (_place_packed, _place_each):
        b = _Builder(60)
        for i, (f, m) in enumerate(packed_before):
            b.packed[key(f, m)] = row(100 + i)
        for i, (f, m) in enumerate(parts_before):
            b.parts[key(f, m)].append(decode_window(row(200 + i)))
        place(b, [key(f, m) for f, m in new], [row(i) for i in range(len(new))])
        builders.append(b)
    one, each = builders
    assert list(one.packed.items()) == list(each.packed.items())
    assert list(one.parts) == list(each.parts)
    for k, parts in one.parts.items():
        assert [(p.sketches, p.counters) for p in parts] == [(p.sketches, p.counters) for p in each.parts[k]]
