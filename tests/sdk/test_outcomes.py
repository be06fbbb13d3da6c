"""Every monitored call's prediction is shipped as an ``ml.outcomes`` record, whatever the
payload sample rate; the buffer is bounded and its overflow counted; one switch turns it off."""

from __future__ import annotations

import numpy as np
import pytest

import infersight
from infersight._outcomes import OutcomeBuffer, compact_prediction, encode_outcomes
from infersight.config import ConfigError, resolve_settings
from infersight.testing import InMemoryTelemetry


def _dropped(t: InMemoryTelemetry, reason: str) -> int:
    return sum(
        int(p.value) for p in t.points("ml.telemetry.dropped") if p.attributes.get("ml.telemetry.reason") == reason
    )


def test_every_call_is_shipped_at_the_default_payload_rate(model_name):
    t = InMemoryTelemetry.install(log_output="none", service_name="tests")  # payload_sample_rate 0.01

    @infersight.monitor(model=model_name, version="4")
    def predict(row):
        return "yes" if row["x"] > 0.5 else "no"

    rng = np.random.default_rng(3)
    xs = rng.random(700)
    ids = []
    for x in xs:
        predict({"x": float(x)})
        ids.append(infersight.last_request_id())
    t.flush()
    got = [o for o in t.outcomes() if o["model"] == model_name]
    assert [o["request_id"] for o in got] == ids
    assert [o["prediction"] for o in got] == ["yes" if x > 0.5 else "no" for x in xs]
    assert {o["version"] for o in got} == {"4"} and all(o["rows"] == 1 for o in got)
    spans = {s.attributes["ml.request.id"]: s for s in t.finished_spans() if s.name == f"predict {model_name}"}
    first = got[0]
    assert first["trace_id"] == format(spans[first["request_id"]].context.trace_id, "032x")
    assert first["span_id"] == format(spans[first["request_id"]].context.span_id, "016x")
    times = [o["time_ns"] for o in got]
    assert times == sorted(times) and times[0] > 1_600_000_000 * 10**9
    payload_logs = [r for r in t.log_records() if r.attributes.get("ml.model.name") == model_name]
    assert len(payload_logs) < 60  # the sampled payloads stay sampled: about 7 expected of 700
    # a few records carry all calls (chunks of at most 512 calls), never one record per call
    records = [r for r in t._all_logs() if r.attributes.get("event.name") == "ml.outcomes"]
    assert 2 <= len(records) <= 4


def test_batches_ship_per_row_values_and_failures_ship_nothing(telemetry, model_name):
    @infersight.monitor(model=model_name)
    def predict(x):
        if x.shape[0] == 0:
            raise ValueError("empty")
        return x[:, 0] * 2.0

    predict(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError):
        predict(np.zeros((0, 2)))
    telemetry.flush()
    got = [o for o in telemetry.outcomes() if o["model"] == model_name]
    assert len(got) == 1
    assert got[0]["prediction"] == [0.0, 4.0, 8.0] and got[0]["rows"] == 3


def test_record_outcomes_off_ships_none(model_name):
    t = InMemoryTelemetry.install(log_output="none", record_outcomes=False)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 1.0

    predict({"x": 1.0})
    t.flush()
    assert [o for o in t.outcomes() if o["model"] == model_name] == []
    assert resolve_settings({}, env={"INFERSIGHT_RECORD_OUTCOMES": "false"}).record_outcomes is False
    with pytest.raises(ConfigError, match="INFERSIGHT_MAX_BUFFERED_OUTCOMES"):
        resolve_settings({}, env={"INFERSIGHT_MAX_BUFFERED_OUTCOMES": "0"})


def test_a_full_buffer_drops_and_counts_until_the_next_export(model_name):
    t = InMemoryTelemetry.install(log_output="none", max_buffered_outcomes=10)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 0.5

    for _ in range(25):
        predict({"x": 1.0})
    t.flush()
    assert len([o for o in t.outcomes() if o["model"] == model_name]) == 10
    t.flush()  # the drop count is taken at the drain, and reported by the export that follows
    assert _dropped(t, "outcome_buffer_full") == 15
    predict({"x": 1.0})
    t.flush()
    assert len([o for o in t.outcomes() if o["model"] == model_name]) == 11


def test_predictions_are_capped_and_non_finite_values_become_null():
    buf = OutcomeBuffer(capacity=10)
    buf.add(("a", 1, "m", "1", None, np.full(5000, 0.123456789)))
    buf.add(("b", 2, "m", "1", None, float("nan")))
    buf.add(("c", 3, "m", "2", None, {"label": "x", "score": np.float64(0.7)}))
    bodies = list(encode_outcomes(buf.take(), max_bytes=200, max_rows=5000))
    by_version = {b["version"]: b for b in bodies}
    one = by_version["1"]
    assert one["prediction"] == [None, None] and one["truncated"] == [True, False] and one["rows"] == [5000, 1]
    assert by_version["2"]["prediction"] == [{"label": "x", "score": 0.7}]
    assert compact_prediction([np.int64(1), True, "b"], 2) == ([1, True], 3)


def test_a_busy_buffer_is_shipped_before_the_export_interval(model_name):
    """At SHIP_AT buffered calls the export thread ships them without waiting for the next
    export (an hour away here), so the buffer's memory stays small."""
    import time

    from infersight._outcomes import SHIP_AT

    t = InMemoryTelemetry.install(log_output="none", metric_export_interval=3600)

    @infersight.monitor(model=model_name)
    def predict(row):
        return 0.5

    for _ in range(SHIP_AT + 10):
        predict({"x": 1.0})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not [o for o in t.outcomes() if o["model"] == model_name]:
        time.sleep(0.05)
    shipped = [o for o in t.outcomes() if o["model"] == model_name]
    assert len(shipped) >= SHIP_AT  # no flush was called
    t.flush()
    assert len([o for o in t.outcomes() if o["model"] == model_name]) == SHIP_AT + 10


def test_calls_whose_export_failed_are_counted(model_name):
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    from infersight.testing import InMemoryMetricExporter

    class Refusing(LogRecordExporter):
        """A log back end that answers every export with a failure (what an OTLP exporter
        returns after its retries)."""

        def export(self, batch):
            return LogRecordExportResult.FAILURE

        def force_flush(self, timeout_millis=30_000):
            return True

        def shutdown(self):
            pass

    metrics = InMemoryMetricExporter()
    infersight.configure(
        log_exporter=Refusing(), metric_exporter=metrics, log_output="none", metric_export_interval=3600
    )

    @infersight.monitor(model=model_name)
    def predict(row):
        return 0.5

    for _ in range(7):
        predict({"x": 1.0})
    infersight.flush()  # ships the outcomes (refused) ...
    infersight.flush()  # ... and exports the count
    dropped = {p.attributes.get("ml.telemetry.reason"): int(p.value) for p in metrics.points("ml.telemetry.dropped")}
    assert dropped.get("outcome_export_failed") == 7
