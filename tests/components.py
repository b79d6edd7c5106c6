"""Real components for the tests that need them, started by the tests themselves: a throw-away
PostgreSQL cluster (``Cluster``), ``manage.py serve`` on a free port (``Serve``), and a plain HTTP
client that never raises (``call``). ``tests/test_faults.py`` uses them; so can any test group that
needs a database server of its own.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 10  # seconds; a request that takes longer counts as a hang


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    override = os.environ.get("PG_BIN")
    if override:
        return Path(override) if (Path(override) / "pg_ctl").exists() else None
    return Path(found[-1]).parent if found else None


def pg_bin_or_skip(*tools: str) -> Path:
    """The PostgreSQL binaries a test's own cluster needs (initdb, pg_ctl and ``tools``), and an OS
    user to run them as when we are root; the test is skipped without them."""
    bin_dir = pg_bin()
    if bin_dir is None or not all((bin_dir / tool).exists() for tool in tools):
        pytest.skip(f"PostgreSQL's server binaries ({', '.join(('initdb', 'pg_ctl', *tools))}) are not installed")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' OS user to run PostgreSQL as")
    return bin_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A throw-away PostgreSQL cluster: data, socket and log in one temporary directory."""

    def __init__(self, bin_dir: Path, database: str = "faults", settings: dict[str, str] | None = None) -> None:
        self.bin = bin_dir
        self.database = database
        self.settings = {"max_connections": "50", **(settings or {})}  # postgres -c name=value
        self.root = Path(tempfile.mkdtemp(prefix=f"{database}-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.root,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "30", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def query(self, sql: str, database: str | None = None) -> str:
        """One statement through psql (in the cluster's database unless told); its rows, unaligned."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
            + ["-d", database or self.database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.strip()

    def terminate_connections(self) -> int:
        """Kill every server process of the service's database (as an operator or a failover would)."""
        killed = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
                f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{self.database}'",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return int(killed.stdout.strip())

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"


class Serve:
    def __init__(self, env: dict[str, str], log: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}; see {log}")
            if call(self.base, "", "GET", "/api/v1/threads")[0] == 401 and len(self.workers()) == workers:
                return
            time.sleep(0.2)
        raise RuntimeError("serve did not start within 30 s")

    def workers(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def call(base: str, key: str, method: str, path: str, body=None) -> tuple[int | str, object]:
    """(status, JSON body), or (exception name, None) when no HTTP answer came."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, raw.decode(errors="replace")
    # Refused, reset, timed out, closed without an answer, or cut off mid-body by a killed worker
    # (http.client.IncompleteRead): not acknowledged.
    except (OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None)
        return type(reason if isinstance(reason, BaseException) else error).__name__, None


def service_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a production-like service process: this one's, without any
    ``DJANGO_``/``DATABASE_``/``THROTTLE_``/``REDIS_`` setting of its own, plus ``settings``."""
    inherited = ("DJANGO_", "DATABASE_", "THROTTLE_", "REDIS_", "API_KEY_", "WEBHOOK_")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(inherited)},
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "components-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "THROTTLE_API_KEY": "",
        "LOG_LEVEL": "WARNING",
        **settings,
    }


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """``manage.py args`` with ``env``: its standard output (an error if it fails, with its stderr)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def new_api_key(env: dict[str, str], org: str) -> str:
    """A write key of organization ``org``, made (with the organization) by the commands."""
    manage(env, "create_org", org)
    return manage(env, "create_api_key", "--org", org).strip().splitlines()[-1]
