"""``infersight.last_request_id()``: the ID of the call just made, per context, never another's."""

from __future__ import annotations

import asyncio
import threading

import pytest

import infersight
from infersight.testing import InMemoryTelemetry


def _span_ids(telemetry: InMemoryTelemetry) -> list[str]:
    telemetry.flush()
    return [s.attributes["ml.request.id"] for s in telemetry.finished_spans()]


def test_names_the_call_that_just_returned_or_raised(telemetry: InMemoryTelemetry, model_name: str) -> None:
    @infersight.monitor(model=model_name)
    def predict(row: dict) -> float:
        if row["x"] < 0:
            raise ValueError("negative")
        return 1.0

    predict({"x": 1})
    first = infersight.last_request_id()
    assert infersight.current_request_id() is None
    try:
        predict({"x": -1})
    except ValueError:
        pass
    second = infersight.last_request_id()
    assert _span_ids(telemetry) == [first, second] and first != second


def test_threads_and_tasks_each_see_their_own_last_call(telemetry: InMemoryTelemetry, model_name: str) -> None:
    @infersight.monitor(model=model_name)
    def predict(row: dict) -> float:
        return float(row["x"])

    @infersight.monitor(model=model_name)
    async def apredict(row: dict) -> float:
        await asyncio.sleep(0)
        return float(row["x"])

    before = infersight.last_request_id()
    seen: dict[int, str | None] = {}
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        predict({"x": i})
        barrier.wait()  # every thread has made its call before any reads
        seen[i] = infersight.last_request_id()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(i: int) -> str | None:
        await apredict({"x": 10 + i})
        await asyncio.sleep(0)  # let the other tasks make their calls
        return infersight.last_request_id()

    async def main() -> list[str | None]:
        return list(await asyncio.gather(*(task(i) for i in range(4))))

    task_ids = asyncio.run(main())
    ids = _span_ids(telemetry)
    assert sorted(seen.values()) == sorted(ids[:4])  # type: ignore[type-var]
    assert sorted(task_ids) == sorted(ids[4:])  # type: ignore[type-var]
    assert len(set(ids)) == 8
    assert infersight.last_request_id() == before  # this thread made no call itself


def test_feedback_for_the_last_call_names_its_model(telemetry: InMemoryTelemetry, model_name: str) -> None:
    @infersight.monitor(model=model_name, version="7")
    def predict(row: dict) -> float:
        return 0.5

    predict({"x": 1})
    infersight.record_feedback(infersight.last_request_id(), actual=1)
    infersight.record_feedback("some-older-request", actual=0)
    telemetry.flush()
    fb = [dict(r.attributes) for r in telemetry.log_records() if r.event_name == "ml.feedback"]
    assert [(f["ml.model.name"], f["ml.model.version"]) for f in fb] == [(model_name, "7"), ("unknown", "unknown")]


def test_feedback_without_a_request_id_says_how_to_get_one(
    telemetry: InMemoryTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="infersight"):
        infersight.record_feedback(None, actual=1)  # type: ignore[arg-type]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "request_id=None" in text and "infersight.last_request_id()" in text
    assert not any(r.exc_info for r in caplog.records)
