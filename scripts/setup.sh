#!/usr/bin/env bash
# Installs infersight from this checkout into the active virtual environment.
#
#   ./scripts/setup.sh          what the quick start needs: infersight with its processor and
#                               the FastAPI the demo's model server runs on (extra `demo`)
#   ./scripts/setup.sh --tests  also the test and benchmark tools (the `dev` extra) and the
#                               PostgreSQL server binaries the storage tests start
#
# Versions that are released together (the OpenTelemetry SDK and contrib families) come from
# constraints.txt, so one upstream release cannot break an install. Works with the pip that
# `python3 -m venv` bundles; nothing is upgraded first.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
venv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) tests=1 ;;
    --venv) venv="${2:?--venv needs a folder}"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (use --tests, --venv DIR or --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$venv" ]; then . "$venv/bin/activate"; fi
if [ -z "${VIRTUAL_ENV:-}" ]; then
  echo "setup.sh: no virtual environment is active; run 'python3 -m venv .venv && . .venv/bin/activate' first" >&2
  exit 2
fi

extras="demo"
steps=1
if [ "$tests" = 1 ]; then extras="dev"; steps=2; fi

step() { printf '\n[%s/%s] %s\n' "$1" "$steps" "$2"; }

# pip names each package as it collects and installs it: that is the progress. The filter
# drops only the warnings some machines' pip.conf raises for missing local index folders.
quiet_missing_indexes() { grep -v "^WARNING: Location .* is ignored" || true; }
step 1 "installing infersight[$extras] into $VIRTUAL_ENV (pip lists each package as it goes)"
python -m pip install --disable-pip-version-check -c constraints.txt -e ".[$extras]" 2>&1 | quiet_missing_indexes

if [ "$tests" = 1 ]; then
  step 2 "PostgreSQL server binaries for the storage tests"
  scripts/install-postgres.sh
  scripts/install-prometheus.sh  # promtool, for the tests of `infersight slo-rules`
  scripts/install-chromium.sh  # headless Chromium + chromedriver for the dashboard's browser tests
fi
printf '\nsetup.sh: done (%s)\n' "$(infersight --version 2>/dev/null || echo infersight)"
