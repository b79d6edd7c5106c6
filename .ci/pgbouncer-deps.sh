#!/usr/bin/env bash
# The pooler tests (pytest -m scaleout, tests/test_pooler.py) start Debian's PgBouncer themselves.
# Idempotent: installs the pgbouncer package only when its binary is missing, without starting the
# package's own service (the tests run theirs on a free port).
set -euo pipefail

found=$(command -v pgbouncer || true)
[ -z "$found" ] && [ -x /usr/sbin/pgbouncer ] && found=/usr/sbin/pgbouncer
if [ -n "$found" ]; then
  echo "pgbouncer: $("$found" --version | head -1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# A policy-rc.d that answers 101 keeps the package's service from starting on installation.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends pgbouncer
/usr/sbin/pgbouncer --version | head -1
