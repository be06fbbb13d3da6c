#!/usr/bin/env bash
# Runs the tests that exercise OpenTelemetry (tests/sdk and tests/integrations) against the
# oldest OpenTelemetry release train pyproject.toml allows, pinned in constraints-oldest.txt
# (constraints.txt pins the newest; the main test run covers that end).
#
#   ./scripts/test-oldest.sh                 venv in .venv-oldest (made on first use, reused)
#   ./scripts/test-oldest.sh --venv DIR      venv somewhere else
#   ./scripts/test-oldest.sh --constraints F another train (to find the oldest that passes)
#   ./scripts/test-oldest.sh -- -k stop      anything after -- goes to pytest
#
# The checkout is installed from a clean copy of its files (not editable), so nothing in the
# tree is built or rewritten: no build/ folder whose stale files a later wheel would pick up,
# no C extension copied over one a running process has loaded.
set -euo pipefail
here="$PWD"
repo="$(cd "$(dirname "$0")/.." && pwd)"
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$here" "$1" ;; esac; }

venv="$repo/.venv-oldest"
constraints="$repo/constraints-oldest.txt"
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv="$(absolute "${2:?--venv needs a folder}")"; shift ;;
    --constraints) constraints="$(absolute "${2:?--constraints needs a file}")"; shift ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-oldest.sh: unknown option '$1' (use --venv DIR, --constraints FILE, -- PYTEST-ARGS or --help)" >&2; exit 2 ;;
  esac
  shift
done
cd "$repo"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
. "$venv/bin/activate"

src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
tar --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude='*.so' --exclude=.pytest_cache --exclude=.hypothesis \
    --exclude=.mypy_cache --exclude=.ruff_cache -cf - . | tar -xf - -C "$src"

quiet_missing_indexes() { grep -v "^WARNING: Location .* is ignored" || true; }
echo "== test-oldest: installing infersight[dev] with $constraints into $venv"
python -m pip install -q --disable-pip-version-check -c "$constraints" "$src[dev]" 2>&1 | quiet_missing_indexes
# The project itself again, from this copy, whatever version an earlier run left installed.
python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$src" 2>&1 | quiet_missing_indexes

# The run must be at the versions the file names, or it proves nothing.
python - "$constraints" <<'EOF'
import sys
from importlib.metadata import version

wanted = {}
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if "==" in line:
        name, pinned = line.split("==")
        wanted[name.strip()] = pinned.strip()
wrong = {name: version(name) for name in wanted if version(name) != wanted[name]}
if wrong:
    sys.exit(f"test-oldest: installed versions differ from {sys.argv[1]}: {wrong}")
print("== test-oldest: " + ", ".join(f"{n} {v}" for n, v in wanted.items() if n in ("opentelemetry-sdk", "opentelemetry-instrumentation")))
EOF

echo "== test-oldest: python -m pytest -q -p no:cacheprovider tests/sdk tests/integrations ${pytest_args[*]:-}"
python -m pytest -q -p no:cacheprovider tests/sdk tests/integrations "${pytest_args[@]}"
