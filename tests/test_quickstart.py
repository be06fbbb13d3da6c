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
    healthy, broken = run.stdout.split("broken pipeline:")
    verdicts = {m[0]: m[1] for m in re.findall(r"^\s+(\w+)\s+\S+\s+statistic=.*?(ok|DRIFT)", healthy, re.M)}
    assert verdicts == {"income": "ok", "tenure": "ok", "support_calls": "ok", "plan": "ok"}
    lines = {line.split()[0]: line for line in broken.strip().splitlines()}
    assert "DRIFT" in lines["income"] and "unit_change:x100" in lines["income"]
    assert "DRIFT" in lines["plan"] and "unseen_categories" in lines["plan"]
    assert lines["tenure"].rstrip().endswith("ok")
