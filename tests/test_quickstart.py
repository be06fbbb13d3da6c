"""The README's first command: the whole loop runs and tells a broken pipeline from healthy data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_finds_the_broken_pipeline_and_nothing_else(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert list(tmpdir.iterdir()) == []  # nothing left behind
    out = run.stdout
    verdicts, alerts = out.split("the processor's verdicts, window by window:")[1].split("alerts:")
    rows = [line.split() for line in verdicts.strip().splitlines()]
    # the processor judged each window itself: the healthy ones ok, the broken ones drifting in
    # income (a unit change) and plan (a category never seen in training), nothing else
    assert [r[1] for r in rows] == ["healthy"] * 3 + ["broken"] * 4
    assert all(r[4:] == ["ok"] for r in rows[:3]), rows
    for r in rows[3:]:
        assert " ".join(r[4:]) == "income (unit_change:x100), plan (unseen_categories)", r
    # one alert, naming both, the pipeline as the likely cause, and a trace to look at
    lines = alerts.strip().splitlines()
    assert lines[0].strip() == "[ticket] inputs on churn: income (unit_change:x100), plan (unseen_categories)"
    assert "pipeline bug" in lines[1] and "rescaled" in lines[2] and "never seen in training" in lines[2]
    assert re.match(r"\s+evidence: trace [0-9a-f]{32} \(request \w+\)$", lines[3]), lines[3]
    assert len(lines) == 4, lines
