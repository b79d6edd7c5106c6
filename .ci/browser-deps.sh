#!/usr/bin/env bash
# Browser tests (pytest -m browser) drive Debian's Chromium through Playwright's Python package.
# Idempotent: installs the chromium package only when /usr/bin/chromium is missing.
# Never runs `playwright install` — the tests launch /usr/bin/chromium directly.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
