"""Type-check the package under the names it is imported by: ``python scripts/typecheck.py``.

setuptools maps three folders into one package (``sdk/infersight`` → ``infersight``,
``integrations`` → ``infersight.integrations``, ``processor`` → ``infersight.processor``; see
``package-dir`` in pyproject.toml). mypy knows nothing of that mapping, nor of the import hook an
editable install uses for it: given the folders, it would check ``integrations/asgi.py`` as a
module ``integrations.asgi`` and miss every import between them. So this script lays the
package out as installed, as a tree of symbolic links in ``.mypy_cache/infersight-tree``, runs
``mypy -p infersight`` on it (options in pyproject.toml's ``[tool.mypy]``), and prints mypy's
report with each path turned back into the file in this checkout. Extra arguments go to mypy.
Exit status is mypy's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".mypy_cache"
TREE = CACHE / "infersight-tree"


def build_tree() -> Path:
    """Symlink each mapped folder into place: the package's own files first, then each mapped
    subpackage as one link (``infersight/integrations`` → ``integrations/``)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        package_dir: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    for package, folder in sorted(package_dir.items()):
        target = TREE.joinpath(*package.split("."))
        source = ROOT / folder
        if "." not in package:  # a top-level package: a real folder of links to its entries
            target.mkdir(parents=True)
            for entry in source.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        else:
            if target.is_symlink() or target.exists():
                raise SystemExit(f"typecheck: {package} maps to {folder}, but {target} already exists")
            target.symlink_to(source, target_is_directory=True)
    return TREE


def main(argv: list[str]) -> int:
    tree = build_tree()
    env = dict(os.environ, MYPYPATH=str(tree))
    packages = ["-p", "infersight"]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(CACHE),
            *packages,
            *argv,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    prefix = re.compile(r"^(\.mypy_cache/infersight-tree/[^:]+|" + re.escape(str(tree)) + r"/[^:]+)")

    def real(match: re.Match[str]) -> str:
        path = (ROOT / match.group(1)).resolve()
        try:
            return str(path.relative_to(ROOT))
        except ValueError:
            return str(path)

    for stream, text in ((sys.stdout, run.stdout), (sys.stderr, run.stderr)):
        for line in text.splitlines(keepends=True):
            stream.write(prefix.sub(real, line))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
