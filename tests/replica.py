"""A primary with a streaming replica, and a Redis of their own, for the tests that need them
(tests/test_replicas.py, bench/replicas.py): real servers on free ports in temporary directories,
run as the ``postgres`` OS user when we are root, removed afterwards.

- ``primary_cluster()``: a ``tests.components.Cluster`` set up for streaming replication
  (``wal_level=replica``, WAL senders, ``hot_standby``) with ``pg_stat_statements`` loaded, so that
  each server counts the statements it ran.
- ``Standby``: a hot standby of it made with ``pg_basebackup -R`` (the way docs/deploy.md says),
  on its own port; ``delay_replay`` sets ``recovery_min_apply_delay`` (``ALTER SYSTEM`` + reload),
  ``stop``/``start`` take it away and back.
- ``statements``: how many statements reading (or writing) the thread and event tables a server
  ran, from ``pg_stat_statements``, whose counts are exact and immediate (``pg_stat_database``
  counts every transaction, the router's once-a-second health checks among them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .components import Cluster, free_port, pg_bin_or_skip

REPLICATION = {
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.max": "1000",
}
# Statements that read, or write, the service's thread and event tables (not the API keys, the
# sessions, the health checks or the statistics queries themselves).
TABLES = "(query ~ 'threads_thread' OR query ~ 'threads_event')"
READS = f"{TABLES} AND query ~* '^\\s*select'"
WRITES = f"{TABLES} AND query ~* '^\\s*(update|insert|delete|with)'"


def binaries_or_skip() -> Path:
    bin_dir = pg_bin_or_skip("pg_basebackup")
    if not (bin_dir.parent / "lib" / "pg_stat_statements.so").exists():
        pytest.skip("pg_stat_statements is not installed (it counts the statements each server runs)")
    return bin_dir


def primary_cluster(bin_dir: Path) -> Cluster:
    """A new cluster ready to stream to standbys, its ``faults`` database made and counting."""
    primary = Cluster(bin_dir, settings=REPLICATION)
    primary.init()
    primary.query("CREATE EXTENSION pg_stat_statements")
    return primary


class Standby(Cluster):
    """A hot standby of ``primary``, made by ``pg_basebackup -R`` (which writes ``standby.signal``
    and ``primary_conninfo``)."""

    def __init__(self, primary: Cluster) -> None:
        super().__init__(primary.bin, database=primary.database, settings=primary.settings)
        self.primary = primary

    def init(self) -> None:
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "-c", "fast", timeout=120,
        )  # fmt: skip
        self.start()
        self.wait_streaming()

    def wait_streaming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.query("SELECT status FROM pg_stat_wal_receiver", "postgres") == "streaming":
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the standby did not stream within {timeout} s; see {self.root / 'log'}")

    def delay_replay(self, seconds: float) -> None:
        """Replay each commit no sooner than ``seconds`` after the primary made it."""
        self.query(f"ALTER SYSTEM SET recovery_min_apply_delay = '{int(seconds * 1000)}ms'", "postgres")
        self.query("SELECT pg_reload_conf()", "postgres")

    def caught_up(self, timeout: float = 30) -> None:
        """Wait until the standby has replayed everything the primary has flushed now."""
        target = self.primary.query("SELECT pg_current_wal_flush_lsn()", "postgres")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn", "postgres") == "t":
                return
            time.sleep(0.1)
        raise RuntimeError(f"the standby did not catch up within {timeout} s")


def statements(cluster: Cluster, which: str = READS) -> int:
    """Statements of the service's database matching ``which`` that ``cluster`` has run so far."""
    return int(
        cluster.query(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            f" WHERE d.datname = 'faults' AND {which}"
        )
    )


class Redis:
    """A throw-away Redis on a free port: the cache that several workers share."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="replica-redis-"))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
