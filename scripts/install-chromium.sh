#!/usr/bin/env bash
# Makes Debian's Chromium and its WebDriver (chromium, chromium-driver) available for the
# dashboard's browser tests, which drive a headless Chromium through /usr/bin/chromedriver
# (selenium is pointed at it, so nothing is downloaded). Idempotent: does nothing when both
# binaries are there; otherwise installs the Debian packages.
set -euo pipefail

have_binaries() {
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
}

if have_binaries; then
  echo "install-chromium: chromium and chromedriver found"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no /usr/bin/chromium or /usr/bin/chromedriver and no apt-get; install Chromium and its chromedriver yourself (the browser tests are skipped without them)" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver

if have_binaries; then
  echo "install-chromium: installed"
else
  echo "install-chromium: chromium-driver installed but /usr/bin/chromium or /usr/bin/chromedriver is missing" >&2
  exit 1
fi
