"""PgBouncer in transaction mode in front of a test cluster, started by the tests themselves.

Debian's ``pgbouncer`` package (.ci/pgbouncer-deps.sh installs it when missing); PgBouncer refuses
to run as root, so when we are root it runs as the ``postgres`` OS user, as the cluster does. Its
configuration, log and pid file live in a temporary directory; it listens on a free port of
127.0.0.1 and sends every database name (``* =``) to the cluster, so that pytest-django's
``test_…`` database goes through it too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .components import free_port

BINARY = "pgbouncer"


def pgbouncer_bin() -> str | None:
    return shutil.which(BINARY) or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
    )


class PgBouncer:
    """``pool_mode = transaction``: a server connection is lent to a client for one transaction.

    ``pool_size`` server connections per database and user at most, fewer than the service's
    clients, so that consecutive transactions of one client do land on different server
    connections."""

    def __init__(self, server_port: int, pool_size: int = 3, max_client_conn: int = 200) -> None:
        binary = pgbouncer_bin()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed")
        self.binary = binary
        self.server_port = server_port
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.log_path = self.root / "pgbouncer.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # "PgBouncer should not run as root"
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.proc: subprocess.Popen | None = None

    @property
    def config(self) -> str:
        return "\n".join(
            [
                "[databases]",
                f"* = host=127.0.0.1 port={self.server_port}",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {self.root / 'userlist.txt'}",
                "admin_users = postgres",
                "pool_mode = transaction",
                f"max_client_conn = {self.max_client_conn}",
                f"default_pool_size = {self.pool_size}",
                # Every server connection open and lent in turn (not the most recently used first):
                # consecutive transactions of a client do run on different server connections.
                f"min_pool_size = {self.pool_size}",
                "server_round_robin = 1",
                # After a server restart, connect again within a second (default 15 s).
                "server_login_retry = 1",
                # Clients that send it (JDBC, some ORMs) would be refused without this; psycopg does not.
                "ignore_startup_parameters = extra_float_digits",
                f"logfile = {self.log_path}",
                f"pidfile = {self.root / 'pgbouncer.pid'}",
                "log_connections = 0",
                "log_disconnections = 0",
                "",
            ]
        )

    def start(self) -> None:
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        ini = self.root / "pgbouncer.ini"
        ini.write_text(self.config)
        if self.as_user:
            user = pwd.getpwnam("postgres")
            for path in self.root.iterdir():
                os.chown(path, user.pw_uid, user.pw_gid)
        self.proc = subprocess.Popen(
            [*self.as_user, self.binary, str(ini)],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"pgbouncer did not accept connections within 20 s:\n{self.log_text()}")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict]:
        """A ``SHOW`` of PgBouncer's admin console (``POOLS``, ``SERVERS``, ``STATS``…), as dicts."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, prepare_threshold=None) as conn:
            cursor = conn.cursor()
            cursor.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # SIGTERM: immediate shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
