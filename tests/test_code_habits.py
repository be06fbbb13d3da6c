"""The habits that keep the code readable run with the tests: ruff's lint rules and its
formatter over every Python file of the project, and mypy over the package (strict on the
public modules), all configured in pyproject.toml."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ["sdk", "integrations", "processor", "tests", "bench", "examples"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: it comes with the dev extra (./scripts/setup.sh --tests)", pytrace=False)
    return subprocess.run([exe, *args, *TREES], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_ruff_lint_is_clean() -> None:
    run = _ruff("check", "--no-cache", "--output-format", "concise")
    assert run.returncode == 0, (
        f"ruff check found problems (fix them, or `ruff check --fix`):\n{run.stdout}{run.stderr}"
    )


def test_ruff_format_is_clean() -> None:
    run = _ruff("format", "--no-cache", "--check")
    assert run.returncode == 0, f"files not formatted (run `ruff format`):\n{run.stdout}{run.stderr}"


def test_mypy_is_clean() -> None:
    # scripts/typecheck.py checks the package under its installed module names (see its doc).
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: it comes with the dev extra (./scripts/setup.sh --tests)", pytrace=False)
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "typecheck.py")], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert run.returncode == 0, f"mypy found problems (python scripts/typecheck.py):\n{run.stdout}{run.stderr}"
