"""What the request path holds between exports is bounded in bytes: buffered rows of any width
are compacted before they hold ``_ROW_HARD_BYTES`` (the exporter thread woken at about
``_ROW_WAKE_BYTES``), outcomes keep no span context, and a drain of the outcome buffer holds
one export request's worth at a time. The bytes are counted (``sys.getsizeof`` of what the
buffers hold), not timed."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from opentelemetry.trace import SpanContext, TraceFlags

import infersight
from infersight import _state, feature_stats
from infersight._outcomes import CHUNK_CALLS, RECORDS_PER_EXPORT, OutcomeBuffer, encode_outcomes
from infersight.feature_stats import FeatureStats, row_limits
from infersight.testing import InMemoryTelemetry

MODEL = ("bounds", "1")


def _held_bytes(acc: FeatureStats) -> int:
    """The bytes the one-row buffers hold: each row's tuples, its value objects, its
    prediction and call records, and the lists' slots."""
    st = acc._state
    total = 0
    for rows in st.rows.values():
        total += sys.getsizeof(rows)
        for pair in rows:
            keys, values = pair
            total += sys.getsizeof(pair) + sys.getsizeof(values) + sum(sys.getsizeof(v) for v in values)
    for preds in st.preds.values():
        total += sys.getsizeof(preds) + sum(sys.getsizeof(p) for p in preds)
    for calls in st.calls.values():
        total += sys.getsizeof(calls) + sum(sys.getsizeof(c) + sys.getsizeof(c[0]) for c in calls)
    return total


@pytest.mark.parametrize("width", [1, 20, 50, 200])
def test_buffered_rows_are_compacted_before_they_hold_the_byte_bound(width: int) -> None:
    acc = FeatureStats()
    woken: list[int] = []
    peaks: list[int] = []
    acc.on_pressure = lambda: woken.append(_held_bytes(acc))  # an exporter that never comes
    compact = acc.compact

    def measured() -> None:
        peaks.append(_held_bytes(acc))
        compact()

    acc.compact = measured  # type: ignore[method-assign]
    wake, hard = row_limits(width)
    names = [f"f{j}" for j in range(width)]
    for i in range(3 * hard + 5):
        # fresh value objects in every row (as rows parsed from JSON): the worst case
        row = {name: float(i * width + j) + 0.5 for j, name in enumerate(names)}
        acc.record_simple(MODEL, row, float(i) + 0.25, 0.001)
    assert len(peaks) == 3 and len(woken) == 3  # woken once and compacted once per hard bound
    assert all(p <= feature_stats._ROW_HARD_BYTES for p in peaks), (peaks, feature_stats._ROW_HARD_BYTES)
    # and the bound is not set far below what it says
    assert all(p >= feature_stats._ROW_HARD_BYTES // 2 for p in peaks), peaks
    assert all(w <= feature_stats._ROW_WAKE_BYTES for w in woken), woken
    assert len(acc._state.rows[MODEL]) == 5
    (count,) = {p.count for m in acc.drain(0, 1) if m.name == "ml.feature.value" for p in m.data.data_points}
    assert count == 3 * hard + 5  # nothing lost by compacting


def test_rows_of_one_row_calls_and_of_lists_share_the_bound() -> None:
    acc = FeatureStats()
    compacted: list[int] = []
    compact = acc.compact

    def measured() -> None:
        compacted.append(len(acc._state.rows.get(MODEL, [])))
        compact()

    acc.compact = measured  # type: ignore[method-assign]
    _, hard = row_limits(3)
    row = {"a": 1.0, "b": 2.0, "c": 3.0}
    for _ in range(hard - 10):
        acc.record_row(MODEL, row)
    acc.record_rows(MODEL, iter([row] * 20))  # not a list: buffered row by row
    assert compacted == [hard + 10]


def test_outcomes_hold_packed_ids_that_encode_as_the_context_does() -> None:
    ctx = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7, False, TraceFlags(1))
    packed = ctx.trace_id << 64 | ctx.span_id
    buf = OutcomeBuffer()
    buf.add(("r1", 1, "m", "1", ctx, 0.5))
    buf.add(("r2", 2, "m", "1", packed, 0.5))
    buf.add(("r3", 3, "m", "1", 0, 0.5))
    buf.add(("r4", 4, "m", "1", None, 0.5))
    (body,) = encode_outcomes(buf.take())
    assert body["trace_id"] == ["0af7651916cd43dd8448eb211c80319c"] * 2 + ["", ""]
    assert body["span_id"] == ["00f067aa0ba902b7"] * 2 + ["", ""]
    assert sys.getsizeof(packed) < sys.getsizeof(ctx) + sys.getsizeof(ctx.trace_id) + sys.getsizeof(ctx.span_id)


def test_the_buffer_gives_the_oldest_at_most_n() -> None:
    buf = OutcomeBuffer()
    for i in range(10):
        buf.add((str(i), i, "m", "1", 0, None))
    assert [o[0] for o in buf.take(4)] == ["0", "1", "2", "3"]
    assert [o[0] for o in buf.take()] == [str(i) for i in range(4, 10)]
    assert buf.take(3) == []


def test_a_drain_holds_one_export_request_of_outcomes_at_a_time(model_name: str, monkeypatch: Any) -> None:
    t = InMemoryTelemetry.install(log_output="none", metric_export_interval=3600)
    rt = _state.get_runtime()
    # nothing shipped before the drain below (no wake, and a compaction does not ship them)
    monkeypatch.setattr(rt.outcomes, "on_pressure", None)
    monkeypatch.setattr(rt.outcomes, "ship_at", 10**9)
    monkeypatch.setattr(rt.outcomes, "hard_at", 10**9)
    slices: list[int] = []
    ship = rt._ship_slice

    def counted(outcomes: list[Any]) -> int:
        slices.append(len(outcomes))
        return ship(outcomes)

    monkeypatch.setattr(rt, "_ship_slice", counted)

    @infersight.monitor(model=model_name)
    def predict(row: dict[str, float]) -> float:
        return row["x"]

    n = 3 * CHUNK_CALLS * RECORDS_PER_EXPORT + 7
    for i in range(n):
        predict({"x": float(i)})
    assert rt.ship_outcomes() == n
    assert max(slices) == CHUNK_CALLS * RECORDS_PER_EXPORT and sum(slices) == n
    t.flush()
    got = [o["prediction"] for o in t.outcomes() if o["model"] == model_name]
    assert got == [float(i) for i in range(n)]


def test_the_buffer_encodes_on_the_request_path_past_its_hard_mark() -> None:
    buf = OutcomeBuffer(ship_at=1000)
    encoded: list[list[Any]] = []
    buf.encoder = lambda outcomes: encoded.append(outcomes) or len(outcomes)
    most = 0
    for i in range(6000):
        buf.add((str(i), i, "m", "1", 0, float(i)))
        most = max(most, len(buf.items))
    assert most == buf.hard_at == 2000  # never more than the hard mark's worth of objects
    assert len(encoded) >= 7 and list(buf.ready) == [CHUNK_CALLS] * len(encoded)
    assert [o[0] for e in encoded for o in e] + [o[0] for o in buf.take()] == [str(i) for i in range(6000)]


def test_a_lagging_export_thread_leaves_at_most_the_hard_mark_of_outcome_objects(
    model_name: str, monkeypatch: Any
) -> None:
    t = InMemoryTelemetry.install(log_output="none", metric_export_interval=3600)
    rt = _state.get_runtime()
    # an export thread that never comes: nothing shipped until the drain below
    monkeypatch.setattr(rt.outcomes, "on_pressure", None)
    monkeypatch.setattr(rt.outcomes, "ship_at", 10**9)
    monkeypatch.setattr(rt.outcomes, "hard_at", 1000)

    @infersight.monitor(model=model_name)
    def predict(row: dict[str, float]) -> float:
        return row["x"]

    n = 5000
    most = 0
    for i in range(n):
        predict({"x": float(i)})
        most = max(most, len(rt.outcomes.items))
    assert most <= 1001 and len(rt.outcomes.ready) >= 7
    held = sum(sys.getsizeof(r.body) for records, _ in rt.outcomes.ready for r in records)
    assert held < 200 * CHUNK_CALLS * len(rt.outcomes.ready)  # under 200 bytes a call, encoded
    assert rt.ship_outcomes() == n and not rt.outcomes.ready
    t.flush()
    got = [o["prediction"] for o in t.outcomes() if o["model"] == model_name]
    assert got == [float(i) for i in range(n)]  # the encoded ones first: the order kept


def test_an_encoder_that_fails_loses_no_outcome_and_is_not_called_again() -> None:
    buf = OutcomeBuffer(ship_at=10)
    calls: list[int] = []

    def failing(outcomes: list[Any]) -> Any:
        calls.append(len(outcomes))
        raise ValueError("boom")

    buf.encoder = failing
    with pytest.raises(ValueError):
        for i in range(30):
            buf.add((str(i), i, "m", "1", 0, None))
    for j in range(i + 1, 30):
        buf.add((str(j), j, "m", "1", 0, None))
    assert calls == [21] and buf.encoder is None
    assert [o[0] for o in buf.take()] == [str(i) for i in range(30)]
