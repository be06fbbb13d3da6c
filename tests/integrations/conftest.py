"""Fixtures for the integration tests; the server helpers live in ``servers.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for ``import servers`` (importlib mode)

from support.otlp_sink import OtlpSink  # noqa: E402


@pytest.fixture(scope="session")
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as s:
        yield s
