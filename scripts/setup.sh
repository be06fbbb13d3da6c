#!/usr/bin/env bash
# Installs infersight for development into the active (or given) venv, and the system
# packages the tests need (PostgreSQL server binaries), using only the project's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=""
if [ "${1:-}" = "--venv" ]; then venv="$2"; fi
if [ -n "$venv" ]; then . "$venv/bin/activate"; fi
python -m pip install -q -e '.[dev]'
if [ -x scripts/install-postgres.sh ]; then scripts/install-postgres.sh; fi
