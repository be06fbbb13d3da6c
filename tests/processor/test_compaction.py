"""Compaction in columns: the columnar merge of stored rows equals the plain merge, held spans
keep answers exact and the backlog bounded, and concurrent compactors never roll a row up twice
(both engines)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.codec import decode_window, encode_window, encode_windows, encode_windows_parsed
from infersight.processor.storage.merge import _CANONICAL, StoredRows
from infersight.stats.sketch import Buckets, ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats
from support.merging import assert_merged_like_merge_all, padded

SIZES = (60, 3600, 86400)
T0 = 1_700_000_000 - 1_700_000_000 % 86400  # a day boundary


def stored_row(kind: int, values: list[float], max_size: int, label: int) -> str:
    """A stored window text of one of several shapes, regular and not."""
    s = ExpHistogram.from_values(np.asarray(values, float), max_size=max_size)
    ws = WindowStats({"value": s})
    if label % 2:
        ws.add_count("missing", "nan", label)
    if kind == 1:  # zero buckets at both ends: merge_all keeps them
        ws.sketches["value"] = padded(s, 1, 2)
    if kind == 2:  # an old store's row: bucket counts as a JSON list
        return json.dumps({"s": {"value": s.to_dict()}, "h": {}, "c": ws.counters})
    if kind == 3:  # a model-role row: two sketches and an explicit histogram
        ws.sketches["duration"] = ExpHistogram.from_values(np.abs(np.asarray(values, float)) + 1, max_size=max_size)
        ws.histograms["duration"] = ExplicitHistogram((0.1, 1.0), np.array([1, label, 0]), 1 + label, 0.5, 0.05, 0.9)
    return encode_window(ws)


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 1, 2, 3]),
        st.lists(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(0.0)), max_size=40),
        st.sampled_from([4, 20, 160]),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=12,
)


@given(rows_strategy, st.data())
@settings(max_examples=150, deadline=None)
def test_rows_merged_in_columns_equal_the_plain_merge(spec, data):
    texts = [stored_row(*row) for row in spec]
    groups = data.draw(
        st.lists(st.lists(st.integers(0, len(texts) - 1), min_size=1, max_size=6), min_size=1, max_size=5)
    )
    assert_merged_like_merge_all(texts, groups)


def stored_window(kind: int, values: list[float], max_size: int, label: int) -> WindowStats:
    """A window of one of several shapes (one sketch and counters; two sketches and a
    histogram; a sketch with an infinite sum; no sketch)."""
    ws = WindowStats({"value": ExpHistogram.from_values(np.asarray(values, float), max_size=max_size)})
    if label % 2:
        ws.add_count("missing", "nan", label)
    if kind == 1:
        ws.sketches["duration"] = ExpHistogram.from_values(np.abs(np.asarray(values, float)) + 1)
        ws.histograms["duration"] = ExplicitHistogram((0.1, 1.0), np.array([1, label, 0]), 1 + label, 0.5, 0.05, 0.9)
    if kind == 2 and values:
        s = ws.sketches["value"]
        ws.sketches["value"] = ExpHistogram(
            s.scale, s.zero_count, s.positive, s.negative, s.count, float("inf"), s.min, s.max, s.max_size
        )
    if kind == 3:
        ws.sketches.clear()
    return ws


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 0, 0, 1, 2, 3]),
            st.lists(st.one_of(st.floats(-1e9, 1e9, allow_nan=False), st.just(0.0)), max_size=40),
            st.sampled_from([4, 20, 160]),
            st.integers(0, 5),
        ),
        min_size=1,
        max_size=10,
    )
)
@settings(max_examples=150, deadline=None)
def test_rows_handed_over_parsed_read_as_their_texts_do(spec):
    windows = [stored_window(*row) for row in spec]
    texts, parsed = encode_windows_parsed(windows)
    assert texts == encode_windows(windows) == [encode_window(ws) for ws in windows]
    for text, row in zip(texts, parsed):
        m = _CANONICAL.fullmatch(text)
        if row is None:  # only rows the text reader would not take as one sketch go without
            assert m is None or "inf" in text
            continue
        assert m is not None
        want = m.groups()
        assert row[0] == want[0] and [int(v) for v in row[1:4]] == [int(v) for v in want[1:4]]
        assert [float(v) for v in row[4:7]] == [float(v) for v in want[4:7]]
        assert int(row[7]) == int(want[7])
        assert (int(row[8]), row[9] or None, row[10] or None) == (int(want[8] or 0), want[9], want[10])
        assert (int(row[11]), row[12] or None, row[13] or None) == (int(want[11] or 0), want[12], want[13])
        assert row[14] == want[14]
    plain, known = StoredRows.parse(texts), StoredRows.parse(texts, parsed)
    assert plain.sketch_names == known.sketch_names and plain.raw == known.raw
    assert [o.counters if o else None for o in plain.others] == [o.counters if o else None for o in known.others]
    for name in ("sum", "min", "max", "plain", "el_start", "counts"):
        assert np.array_equal(getattr(plain, name), getattr(known, name)), name
    assert plain.fields.keys() == known.fields.keys()
    for name, col in plain.fields.items():
        assert np.array_equal(col, known.fields[name]), name


def test_a_row_whose_count_does_not_add_up_is_refused_as_decoding_refuses_it():
    good = encode_window(WindowStats({"value": ExpHistogram.from_values([1.0, 2.0])}))
    bad = good.replace('"count":2', '"count":5')
    with pytest.raises(ValueError, match="corrupt"):
        decode_window(bad)
    with pytest.raises(ValueError, match="corrupt"):
        StoredRows.parse([good, bad]).merged([[0, 1]])


def exporter_batch(minute: int, series: int, rng: np.random.Generator, data: dict) -> WriteBatch:
    """One point per series in base window ``minute`` (what an exporter sends each interval)."""
    batch = WriteBatch()
    for f in range(series):
        values = rng.normal(10 * f, 2, 20)
        data.setdefault(f, {})[minute] = values
        ws = WindowStats({"value": ExpHistogram.from_values(values)})
        ws.add_count("missing", "nan", minute % 3)
        batch.windows[WindowKey("m", "1", FEATURE, f"f{f}", 60, T0 + 60 * minute)] = ws
    return batch


def expect(data: dict, f: int, lo: int, hi: int) -> tuple[ExpHistogram, int]:
    inside = [v for m, v in data[f].items() if lo <= m < hi]
    return ExpHistogram.from_values(np.concatenate(inside)), sum(m % 3 for m in data[f] if lo <= m < hi)


def test_maintenance_passes_hold_the_open_hour_and_answers_stay_exact(store_url):
    store = open_storage(store_url, SIZES)
    rng = np.random.default_rng(7)
    data: dict = {}
    series = 3
    for minute in range(0, 150, 1):  # two and a half hours, one compaction pass per window
        batch = exporter_batch(minute, series, rng, data)
        store.write(batch)
        store.compact(batch.windows)
        if minute % 37 == 0:
            for f in range(series):
                for lo, hi in ((0, minute + 1), (max(minute - 70, 0), minute + 1), (55, 125)):
                    ws, _ = store.query("m", FEATURE, f"f{f}", T0 + 60 * lo, T0 + 60 * hi)
                    if any(lo <= m < hi for m in data[f]):
                        sketch, missing = expect(data, f, lo, hi)
                        assert ws.sketches["value"] == sketch
                        assert ws.counters.get("missing", {}).get("nan", 0) == missing
    # held: only the newest hour's rows (minutes 120-149), one span per series
    unrolled = store._read("SELECT start FROM stats WHERE rolled = 0")
    assert len(unrolled) == 30 * series and min(r[0] for r in unrolled) == T0 + 7200
    assert store.held == series
    # the first two hours are each one 1 h row per series, rolled up once
    _, n = store.query("m", FEATURE, "f0", T0, T0 + 7200)
    assert n == 2
    assert store.compact(None) == 0  # takes the held hour too; nothing had several rows
    assert store._read("SELECT COUNT(*) FROM stats WHERE rolled = 0")[0][0] == 0
    for f in range(series):
        ws, n = store.query("m", FEATURE, f"f{f}", T0, T0 + 86400)
        sketch, missing = expect(data, f, 0, 24 * 60)
        assert n == 1 and ws.sketches["value"] == sketch and ws.counters["missing"]["nan"] == missing
    store.close()


def test_late_rows_and_several_rows_per_window_fold_and_roll_up_once(store_url):
    store = open_storage(store_url, SIZES)
    rng = np.random.default_rng(8)
    data: dict = {}
    for minute in range(0, 125):
        store.write(exporter_batch(minute, 2, rng, data))
    store.compact(None)
    # a second point into old windows (a retry with other bytes, a late exporter), then the
    # data moves on
    late: dict = {}
    folded = 0
    for minute in (3, 3, 61):
        batch = exporter_batch(minute, 2, rng, late)
        for f in range(2):
            data[f][minute] = np.concatenate([data[f][minute], late[f][minute]])
        store.write(batch)
        folded += store.compact(batch.windows)  # their hours are over: taken at once
    assert folded == 2 * 3  # each late row made its window two rows, folded back into one
    assert store.compact(None) == 0
    assert store.row_count() == 2 * (125 + 3 + 1)  # one row per base window, 1 h and 1 d
    for f in range(2):
        ws, n = store.query("m", FEATURE, f"f{f}", T0, T0 + 86400)
        sketch, missing = expect(data, f, 0, 24 * 60)
        assert n == 1 and ws.sketches["value"] == sketch
        ws, _ = store.query("m", FEATURE, f"f{f}", T0 + 180, T0 + 240)
        assert ws.sketches["value"] == expect(data, f, 3, 4)[0]
    store.close()


def test_two_compactors_and_a_writer_at_once_never_roll_a_row_up_twice(store_url):
    stores = [open_storage(store_url, SIZES) for _ in range(3)]
    writer, compactors = stores[0], stores[1:]
    rng = np.random.default_rng(9)
    data: dict = {}
    batches = [exporter_batch(minute, 4, rng, data) for minute in range(0, 180)]
    for b in batches[:60]:
        writer.write(b)
    errors: list[BaseException] = []

    def compact_repeatedly(store, keys_from) -> None:
        try:
            for _ in range(6):
                store.compact(None)
                store.compact(keys_from())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    written = list(batches[0].windows)
    threads = [threading.Thread(target=compact_repeatedly, args=(c, lambda: list(written))) for c in compactors]
    for t in threads:
        t.start()
    for b in batches[60:]:
        writer.write(b)
        written.extend(b.windows)
    for t in threads:
        t.join()
    assert not errors
    compactors[0].compact(None)
    for f in range(4):
        ws, n = writer.query("m", FEATURE, f"f{f}", T0, T0 + 86400)
        sketch, missing = expect(data, f, 0, 24 * 60)
        assert n == 1
        assert ws.sketches["value"] == sketch  # a base row rolled up twice would count twice
        assert ws.counters["missing"]["nan"] == missing
        ws, _ = writer.query("m", FEATURE, f"f{f}", T0 + 3600, T0 + 7200)
        assert ws.sketches["value"].count == 60 * 20
    for s in stores:
        s.close()


def test_the_writer_hands_compaction_its_rows_and_a_replica_that_claimed_them_first_wins(store_url):
    """The store that wrote rows compacts them from its hand-over (no re-parse); where another
    replica claimed them first, the hand-over is dropped unused and nothing counts twice."""
    one, two = open_storage(store_url, SIZES), open_storage(store_url, SIZES)
    rng = np.random.default_rng(10)
    data: dict = {}
    for minute in range(0, 200):
        batch = exporter_batch(minute, 3, rng, data)
        one.write(batch)
        if minute == 0:
            assert one._handover_rows == 3  # both engines tell the writer its rows' ids
        if minute % 50 == 49:  # the other replica takes everything written so far
            two.compact(None)
        one.compact(batch.windows)
    handed = one._handover_rows
    assert handed == sum(len(v) for v in one._handover.values())
    assert handed <= 60 * 3  # at most the open hour (the rest were taken or dropped)
    one.compact(None)
    assert one._handover_rows == 0 and not one._handover
    for f in range(3):
        for store in (one, two):
            ws, n = store.query("m", FEATURE, f"f{f}", T0, T0 + 86400)
            sketch, missing = expect(data, f, 0, 24 * 60)
            assert n == 1 and ws.sketches["value"] == sketch and ws.counters["missing"]["nan"] == missing
            ws, _ = store.query("m", FEATURE, f"f{f}", T0 + 3600, T0 + 7200)
            assert ws.sketches["value"] == expect(data, f, 60, 120)[0]
    one.close()
    two.close()


def test_the_hand_over_is_bounded(tmp_path):
    store = open_storage(f"sqlite:///{tmp_path}/s.db", SIZES)
    store.handover_limit = 10  # type: ignore[attr-defined]
    rng = np.random.default_rng(11)
    data: dict = {}
    for minute in range(0, 70):
        store.write(exporter_batch(minute, 4, rng, data))
    assert store._handover_rows == 10  # type: ignore[attr-defined]
    store.compact(None)
    assert store._handover_rows == 0  # type: ignore[attr-defined]
    for f in range(4):
        ws, n = store.query("m", FEATURE, f"f{f}", T0, T0 + 86400)
        assert n == 1 and ws.sketches["value"] == expect(data, f, 0, 24 * 60)[0]
    store.close()


def test_a_handed_over_row_only_the_plain_merge_takes_is_read_from_its_text(store_url):
    """Zero buckets at the ends (kept by merge_all, trimmed by the columnar merge) send a
    handed-over row through the plain merge, which reads the row's stored text."""
    store = open_storage(store_url, SIZES)
    windows = []
    for minute in range(61):
        s = ExpHistogram.from_values(np.arange(1.0, 4.0 + minute % 3))
        if minute % 2:
            counts = np.concatenate([[0], s.positive.counts, [0]])
            s = ExpHistogram(
                s.scale, s.zero_count, Buckets(s.positive.offset - 1, counts), s.negative, s.count, s.sum, s.min, s.max
            )
        ws = WindowStats({"value": s})
        windows.append(ws)
        key = WindowKey("m", "1", FEATURE, "f", 60, T0 + 60 * minute)
        store.write(WriteBatch({key: ws}))
        store.compact([key])
    assert store._handover_rows == 1  # the next hour's first row
    want = WindowStats.merge_all(windows[:60]).sketches["value"]
    got, n = store.query("m", FEATURE, "f", T0, T0 + 3600)
    assert n == 1 and got.sketches["value"] == want
    store.close()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["m", "n"]),
            st.sampled_from(["a", "b"]),
            st.sampled_from([60, 3600, 86400]),
            st.integers(0, 3 * 86400 // 60),
        ),
        max_size=40,
    ),
    st.sampled_from([0, 3600]),
)
@settings(max_examples=200, deadline=None)
def test_spans_of_the_windows_written_are_what_compaction_took_before(raw, first):
    # what the maintenance pass built from the windows written before spans_of (the
    # comprehensions over every key), for base windows, roll-up windows and both mixed
    from infersight.processor.storage.sql import spans_of

    base = 60
    keys = [(m, "1", "feature", name, size, minute * 60 - minute * 60 % size) for m, name, size, minute in raw]
    want: set[tuple[object, ...]]
    newest = None
    if first:
        opened = {(k[0], k[1], k[2], k[3], k[5] - k[5] % first) for k in keys if k[4] == base}
        want = {(m, v, r, n, base, lo, lo + first) for m, v, r, n, lo in opened}
        if opened:
            newest = max([k[5] for k in keys if k[4] == base])
        want.update((*k[:4], k[4], k[5], k[5] + 1) for k in keys if k[4] != base)
    else:
        want = {(*k[:4], k[4], k[5], k[5] + 1) for k in keys}
    assert spans_of(keys, base, first) == (want, newest)
