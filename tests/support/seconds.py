"""End-to-end tests on 1-second storage windows: start sending as a second begins, judge it
once it has closed."""

from __future__ import annotations

import time
from typing import Any


def at_second_start(latest: float = 0.3) -> None:
    """Wait for the next second to begin unless less than ``latest`` of this one has passed
    (1-second storage windows: what is sent now lands in one window)."""
    now = time.time()
    if now % 1 > latest:
        time.sleep(1 - now % 1 + 0.01)


def evaluate_when_closed(p: Any) -> float:
    """Wait for the current second (a 1-second window) to close, run one evaluation pass of
    the started processor ``p`` at that instant, and return it."""
    boundary = float(int(time.time()) + 1)
    time.sleep(max(0.0, boundary - time.time()) + 0.05)
    p.evaluation.run_once(now=boundary)
    return boundary
