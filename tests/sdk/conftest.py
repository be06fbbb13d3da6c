from __future__ import annotations

import itertools

import pytest

from infersight.testing import InMemoryTelemetry

_ids = itertools.count()


@pytest.fixture
def telemetry() -> InMemoryTelemetry:
    """infersight exporting into memory, payload logs on every call, no stdout noise."""
    return InMemoryTelemetry.install(log_output="none", payload_sample_rate=1.0, service_name="tests")


@pytest.fixture
def model_name() -> str:
    """A model name unique to the test (the SDK's known-feature state is per model)."""
    return f"model-{next(_ids)}"
