"""Run the real ``infersight`` command in a subprocess, optionally with some packages made
unimportable (the one edge we cannot otherwise run here: an install without an extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

# A meta path finder that refuses the named top-level packages, the way an install without
# them would, then the command's own entry point.
_RUNNER = """
import sys
blocked = set(sys.argv[1].split(",")) - {""}

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from infersight.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_cli(
    *args: str,
    block: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``infersight ARGS...`` with ``block`` packages not importable; never raises on exit code."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, ",".join(block), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )
