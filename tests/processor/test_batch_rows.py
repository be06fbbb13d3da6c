"""Batch rows: a request's packed base windows of one model and window stored as one row
(``storage.batches``) answer every reader as the same windows stored a row each, on both
engines: range queries, whole-model queries, series, models, marks, compaction's roll-ups
(equal to ``WindowStats.merge_all``), expiry, the writer's hand-over and concurrent
compactors; a store written before batch rows opens and takes them."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.processor.storage import FEATURE, OUTPUT, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.batches import batch_names, find_series, pack_batch, read_names, split_batch
from infersight.processor.storage.codec import decode_window, pack_windows
from infersight.processor.storage.merge import StoredRows
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import WindowStats
from support.merging import padded

SIZES = (60, 3600, 86400)
T0 = 1_700_000_000 - 1_700_000_000 % 86400  # a day boundary


@given(st.lists(st.binary(max_size=300), max_size=20))
@settings(max_examples=100, deadline=None)
def test_a_batch_row_splits_into_the_windows_it_was_packed_from(parts):
    assert split_batch(pack_batch(parts)) == parts
    assert split_batch(memoryview(pack_batch(parts))) == parts


def test_a_batch_row_whose_lengths_do_not_add_up_is_refused():
    data = pack_batch([b"abc", b"de"])
    for bad in (data[:-1], data + b"x", data[:3]):
        with pytest.raises(ValueError, match="corrupt"):
            split_batch(bad)


def test_names_are_read_once_per_text_and_found_by_role_and_name():
    names = batch_names([("1", FEATURE, "a"), ("2", FEATURE, "a"), ("1", OUTPUT, "b")])
    assert read_names(names) == (("1", FEATURE, "a"), ("2", FEATURE, "a"), ("1", OUTPUT, "b"))
    assert read_names(names) is read_names(str(names))  # cached by text
    assert find_series(names) == {(FEATURE, "a"): ((0, "1"), (1, "2")), (OUTPUT, "b"): ((2, "1"),)}


def window(rng: np.random.Generator, minute: int, f: int) -> WindowStats:
    ws = WindowStats({"value": ExpHistogram.from_values(rng.normal(10 * f, 2, 1 + (minute + f) % 7))})
    ws.add_count("missing", "nan", (minute + f) % 3)
    return ws


def packed(windows: dict[WindowKey, WindowStats]) -> WriteBatch:
    """What the writer sends for windows one point makes alone: their stored bytes."""
    return WriteBatch(packed=dict(zip(windows, pack_windows(list(windows.values())))))


def twins(url_rows: str, url_batches: str) -> tuple[Any, Any]:
    """Two stores given the same writes: one keeps a row per window, one batch rows."""
    rows, batches = open_storage(url_rows, SIZES), open_storage(url_batches, SIZES)
    rows.batch_min = 10**9
    batches.batch_min = 1
    return rows, batches


def same_window(a: WindowStats, b: WindowStats) -> None:
    assert a.sketches.keys() == b.sketches.keys()
    for name, s in a.sketches.items():
        assert b.sketches[name] == s and b.sketches[name].max_size == s.max_size
    assert a.counters == b.counters


def same_answers(rows: Any, batches: Any, series: list[tuple[str, str, str]], now: int, unfolded: int = 0) -> None:
    """Every reader of base windows answers alike from both stores (``unfolded``: windows
    whose late rows the row store folded into one and the batch rows keep apart)."""
    assert batches.row_count() == rows.row_count() + unfolded
    assert batches.models() == rows.models()
    for model in sorted({s[0] for s in series}):
        assert batches.series(model) == rows.series(model)
        for lo, hi in ((T0, now), (now - 600, now), (T0 + 1800, T0 + 9000), (T0, T0 + 86400)):
            a, b = rows.query_model(model, lo, hi), batches.query_model(model, lo, hi)
            assert a.keys() == b.keys()
            for k in a:
                same_window(a[k], b[k])
            assert rows.query_model(model, lo, hi, roles=[OUTPUT]).keys() == b.keys() & {k for k in b if k[0] == OUTPUT}
            assert batches.window_marks(model, lo, hi).keys() == rows.window_marks(model, lo, hi).keys()
    for model, role, name in series:
        for lo, hi in ((T0, now), (now - 600, now), (T0 + 1800, T0 + 9000), (T0, T0 + 86400)):
            for version in (None, "1", "2"):
                (a, n), (b, m) = (
                    rows.query(model, role, name, lo, hi, version),
                    batches.query(model, role, name, lo, hi, version),
                )
                assert n == m
                same_window(a, b)
    a = sorted(rows.iter_windows(60), key=lambda kw: kw[0])
    b = sorted(batches.iter_windows(60), key=lambda kw: kw[0])
    assert sorted(set(k for k, _ in a)) == sorted(set(k for k, _ in b)) and len(b) == len(a) + unfolded
    if not unfolded:
        for (_, x), (_, y) in zip(a, b):
            same_window(x, y)


def exporter_round(rng: np.random.Generator, minute: int) -> tuple[WriteBatch, dict[WindowKey, WindowStats]]:
    """Two models' series for one window, one point each; model b's first feature in two versions."""
    windows = {
        WindowKey(m, "1", role, f"{role[0]}{f}", 60, T0 + 60 * minute): window(rng, minute, f)
        for m in ("a", "b")
        for role, n in ((FEATURE, 4), (OUTPUT, 1))
        for f in range(n)
    }
    windows[WindowKey("b", "2", FEATURE, "f0", 60, T0 + 60 * minute)] = window(rng, minute, 9)
    return packed(windows), windows


SERIES = [(m, role, f"{role[0]}{f}") for m in ("a", "b") for role, n in ((FEATURE, 4), (OUTPUT, 1)) for f in range(n)]


def test_batch_rows_answer_as_rows_of_their_own_through_writes_late_points_and_compaction(store_url, tmp_path):
    rows, batches = twins(f"sqlite:///{tmp_path}/rows.db", store_url)
    rng = np.random.default_rng(3)
    data: dict[tuple[str, str, str, str], dict[int, list[WindowStats]]] = {}
    for minute in range(150):  # two and a half hours, one maintenance pass per window
        batch, windows = exporter_round(rng, minute)
        for k, ws in windows.items():
            data.setdefault(k[:4], {}).setdefault(minute, []).append(ws)
        for store in (rows, batches):
            store.write(batch)
            store.compact(batch.packed)
        if minute in (0, 59, 61, 100):
            same_answers(rows, batches, SERIES, T0 + 60 * (minute + 1))
    # one model-window now has a batch row and the request's windows of it stay rows of their own
    assert batches._read("SELECT COUNT(*) FROM stats WHERE size = 60")[0][0] == 0
    assert batches._read("SELECT COUNT(*) FROM batches")[0][0] == 2 * 150
    # late points: another batch into an hour already rolled up, and a window of its own
    marks_before = batches.window_marks("a", T0, T0 + 600)
    late_windows = {WindowKey("a", "1", FEATURE, f"f{f}", 60, T0 + 180): window(rng, 3, f + 1) for f in range(4)}
    mixed = packed(late_windows)
    mixed.windows[WindowKey("a", "1", OUTPUT, "o0", 60, T0 + 180)] = window(rng, 3, 5)
    for k, ws in [*late_windows.items(), *mixed.windows.items()]:
        data[k[:4]][3].append(ws)
    for store in (rows, batches):
        store.write(mixed)
        store.compact([*mixed.packed, *mixed.windows])
    marks_after = batches.window_marks("a", T0, T0 + 600)
    assert marks_after[T0 + 180] != marks_before[T0 + 180]
    assert {t: m for t, m in marks_after.items() if t != T0 + 180} == {
        t: m for t, m in marks_before.items() if t != T0 + 180
    }
    # compaction folds a late window's rows into one; a batch row is not rewritten for that, so
    # its window keeps the late entry or row beside the first (answers are the same; 5 windows)
    same_answers(rows, batches, SERIES, T0 + 150 * 60, unfolded=5)
    for store in (rows, batches):
        store.compact(None)
    assert batches._read("SELECT COUNT(*) FROM batches WHERE rolled = 0")[0][0] == 0
    same_answers(rows, batches, SERIES, T0 + 150 * 60, unfolded=5)
    # compaction's roll-ups equal the plain merge of every window written
    for (model, version, role, name), by_minute in data.items():
        want = WindowStats.merge_all([ws for m in sorted(by_minute) for ws in by_minute[m]])
        got, n = batches.query(model, role, name, T0, T0 + 86400, version)
        assert n == 1
        same_window(want, got)
        hour = WindowStats.merge_all([ws for m in sorted(by_minute) if 60 <= m < 120 for ws in by_minute[m]])
        same_window(hour, batches.query(model, role, name, T0 + 3600, T0 + 7200, version)[0])
    rows.close()
    batches.close()


@given(
    st.lists(
        st.tuples(st.integers(0, 130), st.integers(0, 5), st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=12)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 4),
)
@settings(max_examples=60, deadline=None)
def test_compacted_batch_rows_equal_merge_all_of_their_windows(points, per_request):
    """Random series and minutes, written as batch rows a few windows a request (several
    batch rows may hold one series' window), compacted: every series' hour and day equal
    ``WindowStats.merge_all`` of its windows, and base windows read back as written."""
    store = open_storage("sqlite:///:memory:", SIZES)
    store.batch_min = 1
    written: dict[tuple[str, int], list[WindowStats]] = {}
    requests: list[dict[WindowKey, WindowStats]] = []
    for minute, f, values in points:
        ws = WindowStats({"value": ExpHistogram.from_values(np.asarray(values))})
        ws.add_count("missing", "nan", f)
        key = WindowKey("m", "1", FEATURE, f"f{f}", 60, T0 + 60 * minute)
        if not requests or len(requests[-1]) >= per_request or key in requests[-1]:
            requests.append({})
        requests[-1][key] = ws
        written.setdefault((f"f{f}", minute), []).append(ws)
    for windows in requests:
        store.write(packed(windows))
        store.compact(list(windows))
    store.compact(None)
    for f in {name for name, _ in written}:
        mine = {m: w for (name, m), w in written.items() if name == f}
        for lo, hi in ((0, 60), (60, 120), (120, 180), (0, 1440)):
            inside = [ws for m in sorted(mine) if lo <= m < hi for ws in mine[m]]
            got, n = store.query("m", FEATURE, f, T0 + 60 * lo, T0 + 60 * hi)
            if inside:
                assert n == 1
                same_window(WindowStats.merge_all(inside), got)
        for m, windows in mine.items():
            same_window(WindowStats.merge_all(windows), store.query("m", FEATURE, f, T0 + 60 * m, T0 + 60 * m + 60)[0])
    store.close()


def test_expiry_takes_batch_rows_once_rolled_up_and_counts_their_windows(store_url):
    store = open_storage(store_url, SIZES)
    store.batch_min = 1
    rng = np.random.default_rng(4)
    for minute in range(0, 180, 1):
        store.write(exporter_round(rng, minute)[0])  # never compacted: expiry rolls them up first
    now = T0 + 180 * 60
    before = store.query("a", FEATURE, "f1", T0, T0 + 86400)[0]
    out = store.expire(now, {60: 3600.0, 3600: 86400.0 * 90, 86400: 86400.0 * 730}, 30 * 86400, 86400)
    assert out["windows"] == 120 * 11  # two hours of 11 series' windows, past a 1 h retention
    assert store._read("SELECT MIN(start) FROM batches")[0][0] == now - 3600
    same_window(before, store.query("a", FEATURE, "f1", T0, T0 + 86400)[0])
    assert store.series("a")[0]["windows"] == 60
    store.close()


def test_the_writer_hands_compaction_its_batch_rows_and_a_replica_that_claimed_them_first_wins(store_url):
    one, two = open_storage(store_url, SIZES), open_storage(store_url, SIZES)
    one.batch_min = two.batch_min = 1
    rng = np.random.default_rng(5)
    data: dict[tuple[str, ...], list[WindowStats]] = {}
    for minute in range(200):
        batch, windows = exporter_round(rng, minute)
        for k, ws in windows.items():
            data.setdefault(k[:4], []).append(ws)
        one.write(batch)
        if minute == 0:
            assert one._handover_batch_rows == 11 and not one._handover_rows
        if minute % 50 == 49:
            two.compact(None)
        one.compact(batch.packed)
    assert one._handover_batch_rows <= 60 * 11  # at most the open hour
    one.compact(None)
    assert one._handover_batch_rows == 0 and not one._handover_batches
    for (model, version, role, name), windows in data.items():
        for store in (one, two):
            got, n = store.query(model, role, name, T0, T0 + 86400, version)
            assert n == 1
            same_window(WindowStats.merge_all(windows), got)
    one.close()
    two.close()


def test_two_compactors_and_a_writer_of_batch_rows_never_roll_a_window_up_twice(store_url):
    stores = [open_storage(store_url, SIZES) for _ in range(3)]
    for s in stores:
        s.batch_min = 1
    writer, compactors = stores[0], stores[1:]
    rng = np.random.default_rng(6)
    rounds = [exporter_round(rng, minute) for minute in range(180)]
    for batch, _ in rounds[:60]:
        writer.write(batch)
    errors: list[BaseException] = []
    written = list(rounds[0][0].packed)

    def compact_repeatedly(store: Any) -> None:
        try:
            for _ in range(6):
                store.compact(None)
                store.compact(list(written))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=compact_repeatedly, args=(c,)) for c in compactors]
    for t in threads:
        t.start()
    for batch, _ in rounds[60:]:
        writer.write(batch)
        written.extend(batch.packed)
    for t in threads:
        t.join()
    assert not errors
    compactors[0].compact(None)
    for model, role, name in SERIES:
        windows = [r[1][WindowKey(model, "1", role, name, 60, T0 + 60 * m)] for m, r in enumerate(rounds)]
        got, n = writer.query(model, role, name, T0, T0 + 86400, "1")
        assert n == 1
        same_window(WindowStats.merge_all(windows), got)  # a window rolled up twice would count twice
    for s in stores:
        s.close()


def test_a_store_written_before_batch_rows_opens_and_takes_them(store_url):
    store = open_storage(store_url, SIZES)
    rng = np.random.default_rng(7)
    old_batch, old = exporter_round(rng, 0)
    store.write(WriteBatch(old))  # rows of their own, as main wrote
    store._read("SELECT 1")  # the store works; now make it what main left: no batches table
    with store._wlock, store._tx(store._w, fence=False) as cur:
        cur.execute("DROP TABLE batches")
    store.close()
    store = open_storage(store_url, SIZES)
    store.batch_min = 1
    batch, new = exporter_round(rng, 1)
    store.write(batch)
    store.compact(None)
    for k, ws in [*old.items(), *new.items()]:
        same_window(ws, store.query(k.model, k.role, k.name, k.start, k.start + 60, k.version)[0])
        same_window(decode_window(pack_windows([ws])[0]), ws)
    got, n = store.query("a", FEATURE, "f0", T0, T0 + 3600, "1")
    assert n == 1  # both minutes in the hour's roll-up (the open hour taken by compact(None))
    same_window(
        WindowStats.merge_all(
            [old[k] for k in old if k.name == "f0" and k.model == "a"]
            + [new[k] for k in new if k.name == "f0" and k.model == "a"]
        ),
        got,
    )
    store.close()


def test_a_few_windows_of_a_model_stay_rows_of_their_own(tmp_path):
    store = open_storage(f"sqlite:///{tmp_path}/s.db", SIZES)
    rng = np.random.default_rng(8)
    windows = {WindowKey("m", "1", FEATURE, f"f{f}", 60, T0): window(rng, 0, f) for f in range(store.batch_min - 1)}
    windows.update({WindowKey("big", "1", FEATURE, f"f{f}", 60, T0): window(rng, 0, f) for f in range(store.batch_min)})
    store.write(packed(windows))
    assert store._read("SELECT model, COUNT(*) FROM stats GROUP BY model") == [("m", store.batch_min - 1)]
    assert store._read("SELECT model, n FROM batches") == [("big", store.batch_min)]
    store.batch_max = 3  # a larger batch is split into rows of at most batch_max windows
    store.write(packed({WindowKey(k.model, k.version, k.role, k.name, 60, T0 + 60): ws for k, ws in windows.items()}))
    assert [r[0] for r in store._read("SELECT n FROM batches WHERE start = ? ORDER BY id", (T0 + 60,))] == [3, 3, 2]
    assert store.row_count() == 2 * len(windows)
    store.close()


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 0, 0, 0, 1, 2, 3]),
            st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(0.0)), min_size=1, max_size=30),
            st.sampled_from([4, 20, 160]),
        ),
        min_size=1,
        max_size=10,
    ),
    st.data(),
)
@settings(max_examples=150, deadline=None)
def test_groups_merged_as_arrays_equal_groups_merged_row_by_row(spec, data):
    """``StoredRows.merged_flat`` (compaction's call, with no loop per row where every row is
    one sketch of one name) equals ``merged`` of the same groups, whatever the rows: zero
    buckets at an end (the plain merge), counters, a second name."""
    rows = []
    for kind, values, max_size in spec:
        s = ExpHistogram.from_values(np.asarray(values), max_size=max_size)
        ws = WindowStats({"other" if kind == 2 else "value": s})
        if kind == 1:
            ws.add_count("missing", "nan", 1)
        if kind == 3:  # zero buckets at the ends: merge_all keeps them, so the plain merge takes it
            ws.sketches["value"] = padded(s, 1, 2)
        rows.append(pack_windows([ws])[0])
    n = len(rows)
    groups = data.draw(st.lists(st.lists(st.integers(0, n - 1), max_size=6), min_size=1, max_size=5))
    if data.draw(st.booleans()):  # every row once, in order (the gather is skipped)
        groups = [list(range(n))]
    parsed = StoredRows.parse(rows)
    assert (parsed.uniform == "value") == all(kind in (0, 3) for kind, _, _ in spec)
    flat = np.array([r for g in groups for r in g], dtype=np.int64)
    got = parsed.merged_flat(flat, np.array([len(g) for g in groups], dtype=np.int64))
    want = StoredRows.parse(rows).merged(groups)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        same_window(b, a)


def test_batch_rows_in_a_store_without_roll_ups_are_claimed_and_read_as_written(tmp_path):
    rows, batches = twins(f"sqlite:///{tmp_path}/rows.db", f"sqlite:///{tmp_path}/batches.db")
    for store in (rows, batches):
        store.close()
    rows, batches = open_storage(rows.url, (60,)), open_storage(batches.url, (60,))
    rows.batch_min, batches.batch_min = 10**9, 1
    rng = np.random.default_rng(9)
    for minute in range(5):
        batch, _ = exporter_round(rng, minute)
        for store in (rows, batches):
            store.write(batch)
            store.compact(batch.packed)
    same_answers(rows, batches, SERIES, T0 + 300)
    for store in (rows, batches):
        store.compact(None)
    assert batches._read("SELECT COUNT(*) FROM batches WHERE rolled = 0")[0][0] == 0
    assert rows._read("SELECT COUNT(*) FROM stats WHERE rolled = 0")[0][0] == 0
    same_answers(rows, batches, SERIES, T0 + 300)
    rows.close()
    batches.close()
