"""``manage.py serve``: the production HTTP server, Granian's WSGI interface in front of Django.

The tuning values below were chosen by measurement on a 2-core machine: wrk's PATCH load (16
keep-alive connections) with PostgreSQL behind, as `make bench` runs it.
"""

from __future__ import annotations

import json
import os
import warnings

from django.conf import settings
from django.core.management.base import CommandError
from granian.constants import Interfaces
from granian.server import Server

from ._common import OperatorCommand

# One Python thread per worker process: the GIL runs one request's Python at a time anyway, and
# more threads mostly add switching. Measured on a hot row: 4 blocking threads gave 0.73x the
# requests per second of 1, and 2 threads 0.94x (1.05x over 200 threads, with more CPU per
# request). Granian with 2 workers x 1 thread served 903-980 req/s where gunicorn's best (4 sync
# workers) served 679; after the request path was trimmed, gunicorn with 2 gthread workers x 8
# threads matched its throughput within the noise but spent 12% more CPU per request.
BLOCKING_THREADS = 1
# Connections waiting to be accepted; requests beyond what a worker runs at once wait in Granian
# (its default backpressure: backlog / workers each), never in Python.
BACKLOG = 1024
# A worker that dies (killed, out of memory) is replaced; a worker killed again within 5.5 s of
# its respawn stops the server (Granian's crash-loop guard), for the supervisor to act.
RESPAWN_FAILED_WORKERS = True


# Worker processes a core: a worker waits for PostgreSQL during part of every request (the
# statement, the commit's WAL flush), and with one worker a core the cores sat partly idle. On 2
# cores, PATCH over 200 threads (wrk, 16 connections, alternating rounds): 2 workers 1,301 req/s,
# 3 workers 1,447, 4 workers 1,484 (the cores then busy); one hot row, where every writer waits for
# the row lock anyway, 4 workers did 0.92x of 2 (1,173-1,204 vs 1,274-1,298 req/s).
WORKERS_PER_CORE = 2


def default_workers() -> int:
    """Two processes per core this process may run on (a container's CPU set, not the host's)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return WORKERS_PER_CORE * cores


def env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"${name} must be a whole number, not {value!r}.") from None


class Command(OperatorCommand):
    help = (
        "Run the production HTTP server (Granian, WSGI) with static files. Port: --port, else $PORT, "
        "else 8000; workers: --workers, else $WEB_CONCURRENCY, else two per core. SIGTERM stops it "
        "cleanly. Refuses to start with DJANGO_DEBUG on unless --allow-debug."
    )
    requires_system_checks = []  # the workers import the app; `check --deploy` is the place for checks

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, help="Port (default $PORT, else 8000).")
        parser.add_argument("--workers", type=int, help="Worker processes (default $WEB_CONCURRENCY, else cores).")
        parser.add_argument("--allow-debug", action="store_true", help="Start even with DJANGO_DEBUG on.")
        parser.add_argument("--dry-run", action="store_true", help="Print the server's settings as JSON and exit.")

    def handle(self, *args, host, port, workers, allow_debug, dry_run, **options):
        if settings.DEBUG and not allow_debug:
            raise CommandError("DJANGO_DEBUG is on: refusing to serve in production (pass --allow-debug to insist).")
        port = next(v for v in (port, env_int("PORT"), 8000) if v is not None)
        workers = next(v for v in (workers, env_int("WEB_CONCURRENCY"), default_workers()) if v is not None)
        if not 0 < port < 65536:
            raise CommandError(f"The port must be between 1 and 65535, not {port}.")
        if workers < 1:
            raise CommandError(f"There must be at least one worker, not {workers}.")
        module, _, name = settings.WSGI_APPLICATION.rpartition(".")
        config = {
            "target": f"{module}:{name}",
            "address": host,
            "port": port,
            "workers": workers,
            "blocking_threads": BLOCKING_THREADS,
            "backlog": BACKLOG,
            "respawn_failed_workers": RESPAWN_FAILED_WORKERS,
        }
        if dry_run:
            self.stdout.write(json.dumps(config))
            return
        # Without `collectstatic`, WhiteNoise serves the static files from the installed apps
        # (WHITENOISE_USE_FINDERS): its warning that STATIC_ROOT does not exist is no fault here.
        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

        # Granian's main process stops its workers on SIGTERM or SIGINT and returns: the command
        # then exits with status 0.
        Server(interface=Interfaces.WSGI, websockets=False, **config).serve()
