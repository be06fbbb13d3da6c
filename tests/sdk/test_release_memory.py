"""After each metric export the C allocator's free memory is handed back to the system (glibc's
``malloc_trim``), at most once a second, when ``release_memory`` is on (it is off by default)."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

import infersight
from infersight import _runtime
from infersight.config import ConfigError, resolve_settings
from support.otlp_sink import OtlpSink


@pytest.fixture(scope="module")
def sink():
    with OtlpSink() as s:
        yield s


def test_the_setting_defaults_on_and_reads_the_environment() -> None:
    assert resolve_settings({}, env={}).release_memory is False  # opt-in: a process-wide call
    assert resolve_settings({}, env={"INFERSIGHT_RELEASE_MEMORY": "true"}).release_memory is True
    with pytest.raises(ConfigError, match="release_memory"):
        resolve_settings({"release_memory": "sometimes"}, env={})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_a_release_trims_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setitem(_runtime._trim_state, "loaded", True)
    monkeypatch.setitem(_runtime._trim_state, "fn", lambda pad: calls.append(pad) or 1)
    monkeypatch.setitem(_runtime._trim_state, "last", 0.0)
    assert _runtime.release_free_memory() is True
    assert _runtime.release_free_memory() is False  # within the second
    monkeypatch.setitem(_runtime._trim_state, "last", time.monotonic() - 1.5)
    assert _runtime.release_free_memory() is True
    assert calls == [0, 0]


def test_without_the_call_in_the_c_library_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_runtime._trim_state, "loaded", True)
    monkeypatch.setitem(_runtime._trim_state, "fn", None)
    monkeypatch.setitem(_runtime._trim_state, "last", 0.0)
    assert _runtime.release_free_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_the_real_call_runs_on_this_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_runtime._trim_state, "loaded", False)
    monkeypatch.setitem(_runtime._trim_state, "last", 0.0)
    assert _runtime.release_free_memory() is (_runtime._trim_state["fn"] is not None)


@pytest.mark.parametrize("on", [True, False])
def test_each_export_releases_memory_unless_turned_off(
    sink: OtlpSink, monkeypatch: pytest.MonkeyPatch, on: bool
) -> None:
    released: list[Any] = []
    monkeypatch.setattr(_runtime, "release_free_memory", lambda: released.append(1) or True)
    sink.clear()
    infersight.configure(
        endpoint=sink.grpc_endpoint,
        protocol="grpc",
        log_output="none",
        metric_export_interval=3600,
        release_memory=on,
    )

    @infersight.monitor(model="trim", version="1")
    def predict(row: dict[str, float]) -> float:
        return 0.5

    predict({"a": 1.0})
    assert infersight.flush()
    assert sink.metric_points("ml.feature.value")  # the export happened
    assert bool(released) is on
