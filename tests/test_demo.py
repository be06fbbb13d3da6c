"""``infersight demo`` shortened: it finds everything it injects (drift in two features, the
latency SLO's burn, the bad inputs, the accuracy drop from late labels), exits 0, and leaves
nothing behind; and it exits 1 when the processor finds nothing (the self-test can fail)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from infersight.processor import demo


def test_demo_finds_what_it_injects_and_leaves_nothing_behind(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    run = subprocess.run(
        ["infersight", "demo", "--duration", "20"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert list(tmpdir.iterdir()) == []
    out = run.stdout
    for phase in ("normal", "drift", "latency", "bad-inputs", "labels"):
        assert re.search(rf"^  {phase}\s+\[#+\] 100%$", out, re.M), phase
    found = out.split("what the processor found")[1]
    drift = re.search(r"^  drift: +(.*)$", found, re.M)
    assert drift and "monthly_charges since" in drift.group(1) and "support_calls since" in drift.group(1)
    slo = re.search(r"^  SLO alerts: +(.*)$", found, re.M)
    assert slo and "p99-100ms/page (page" in slo.group(1)
    dq = re.search(r"^  data quality: +(.*)$", found, re.M)
    assert dq and dq.group(1) != "none"
    acc = re.search(r"^  accuracy: +normal ([0-9.]+), drift ([0-9.]+) \(on late labels\); accuracy", found, re.M)
    assert acc and float(acc.group(2)) < float(acc.group(1)) - 0.3
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/ ", found, re.M)
    assert "NOT FOUND" not in out


def test_the_self_test_fails_when_nothing_is_found() -> None:
    f = demo.Found()
    assert f.missing() == [
        "drift in monthly_charges",
        "drift in support_calls",
        "the latency SLO burn alert",
        "data-quality findings for the bad inputs",
        "the accuracy drop from late labels",
    ]
    f = demo.Found(
        drifted={"monthly_charges": 1, "support_calls": 1},
        slo_alerts=["p99-100ms/page (page, open)"],
        data_quality=["tenure (schema:required)"],
        accuracy={"normal": 0.9, "drift": 0.2},
        quality_alerts=["accuracy 0.2"],
    )
    assert f.missing() == []


def test_too_short_a_duration_is_refused() -> None:
    run = subprocess.run(["infersight", "demo", "--duration", "3"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--duration 3 is too short; use at least 10 seconds" in run.stderr


@pytest.mark.parametrize("n", [1, 500])
def test_the_worlds_answer_changes_where_the_inputs_moved(n: int) -> None:
    import numpy as np

    rng = np.random.default_rng(4)
    normal = demo.make_rows(rng, n)
    assert set(normal[0]) == {*demo.FEATURES, "plan"}
    if n > 1:
        moved = demo.make_rows(rng, n, drift=True)
        assert np.mean([r["support_calls"] for r in moved]) > np.mean([r["support_calls"] for r in normal]) + 1.5
