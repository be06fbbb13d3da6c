#!/usr/bin/env bash
# Makes PostgreSQL server binaries (initdb, postgres, pg_ctl) available for the processor's
# tests, which start a throw-away server on a loopback port. Idempotent: does nothing when the
# binaries are already there; otherwise installs Debian's postgresql package.
set -euo pipefail

have_binaries() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ] && return 0
  done
  return 1
}

if have_binaries; then
  echo "install-postgres: PostgreSQL server binaries found"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgres: no PostgreSQL binaries and no apt-get; install PostgreSQL 13+ server binaries (initdb, pg_ctl, postgres) yourself" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# Debian's package creates and starts a cluster; the tests use their own, so stop it again.
$SUDO apt-get install -y postgresql
if command -v service >/dev/null 2>&1; then $SUDO service postgresql stop >/dev/null 2>&1 || true; fi

if have_binaries; then
  echo "install-postgres: installed"
else
  echo "install-postgres: postgresql installed but initdb/pg_ctl/postgres were not found" >&2
  exit 1
fi
