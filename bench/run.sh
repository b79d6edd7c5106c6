#!/usr/bin/env bash
# `make bench`: install what the benchmark needs (wrk and pgbench from Debian's packages, the
# project's [bench] extra with the in-memory peer), make sure PostgreSQL answers on 127.0.0.1,
# then run bench/run.py. BENCH_QUICK=1 for a short run; see bench/run.py for the other knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

need_apt() {
  if [ "$(id -u)" != 0 ]; then echo "bench: '$1' is missing and only root can apt-get install it" >&2; exit 1; fi
  apt-get install -y -q "$1" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$1" >/dev/null; }
}
command -v wrk >/dev/null || { echo "bench: installing wrk"; need_apt wrk; }
command -v pgbench >/dev/null || { echo "bench: installing pgbench"; need_apt postgresql-client; }

# The [bench] extra goes into a venv of its own: the peer pins packages (jsonschema-rs) that the
# test dependencies (schemathesis) need newer, and one resolver run for both would move the tests'.
BENCH_VENV=.venv-bench
if [ ! -f $BENCH_VENV/.installed ] || [ pyproject.toml -nt $BENCH_VENV/.installed ]; then
  echo "bench: installing the [bench] extra into $BENCH_VENV (the LangGraph peer, py-spy, pyinstrument)"
  if { test -x $BENCH_VENV/bin/python || python3 -m venv $BENCH_VENV; } \
      && $BENCH_VENV/bin/python -m pip install --quiet -e '.[bench]'; then
    touch $BENCH_VENV/.installed
  else
    echo "bench: the [bench] extra did not install: the peer is skipped (RESULTS.md says so)" >&2
  fi
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

exec timeout 5400 $PY bench/run.py  # a full run with its first 1M-thread seed takes about 50 minutes here
