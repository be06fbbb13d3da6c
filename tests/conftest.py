from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _quiet_exit():
    """Tests point the process-wide SDK at receivers that close before the interpreter exits;
    stop exporting at the end so exit-time flushing does not retry against closed ports."""
    yield
    import infersight

    infersight.configure(exporter="none", log_output="none")
