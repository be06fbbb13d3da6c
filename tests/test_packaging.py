"""The built wheel installs into a fresh venv and imports, with the package-dir mapping intact."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = dist.glob("infersight-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], capture_output=True, text=True, timeout=300
    )
    assert install.returncode == 0, install.stderr[-2000:]

    # Dependencies come from this interpreter's site-packages via PYTHONPATH: a plain path
    # entry, so the editable install's finder (.pth) is not processed and cannot shadow the wheel.
    deps = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = deps
    probe = (
        "import infersight, infersight.integrations, infersight.processor, infersight.integrations.fastapi,"
        " infersight.processor.service, infersight.cli;"
        "print(infersight.__file__); print(infersight.integrations.__file__); print(infersight.processor.__file__)"
    )
    run = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    files = run.stdout.split()
    assert all(str(env_dir) in f for f in files), files  # the wheel's copy, not the source tree
    cli = subprocess.run(
        [str(env_dir / "bin" / "infersight"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert cli.returncode == 0 and "profile" in cli.stdout and "processor" in cli.stdout, cli.stderr[-2000:]
