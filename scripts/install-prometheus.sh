#!/usr/bin/env bash
# Makes `promtool` available for the tests of `infersight slo-rules`, which check the generated
# Prometheus rules with `promtool check rules` and `promtool test rules`. Idempotent: does
# nothing when promtool is already on the PATH; otherwise installs Debian's prometheus package
# (which also starts a Prometheus server: the tests need none, so it is stopped again).
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "install-prometheus: promtool found ($(command -v promtool))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-prometheus: no promtool and no apt-get; install Prometheus 2.x (its promtool binary) yourself" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y prometheus
if command -v service >/dev/null 2>&1; then $SUDO service prometheus stop >/dev/null 2>&1 || true; fi

if command -v promtool >/dev/null 2>&1; then
  echo "install-prometheus: installed"
else
  echo "install-prometheus: prometheus installed but promtool was not found" >&2
  exit 1
fi
