"""``manage.py serve``: the production server on the test database (SQLite or PostgreSQL, as the
suite runs), its port and workers from the environment, static files, SIGTERM, and DEBUG."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from threads.keys import api_key_create

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORT", "WEB_CONCURRENCY"))}
    return {**env, "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING", **extra}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "serve", *args],
        cwd=ROOT,
        env=serve_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def get(url: str, key: str = "") -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def workers_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.django_db(transaction=True)
def test_it_serves_the_api_and_static_files_and_stops_cleanly_on_sigterm(org, tmp_path):
    key = api_key_create(org=org, name="serve")[1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    # The port and the number of workers come from the environment, as a platform sets them.
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=serve_env(DATABASE_URL=database_url(), PORT=str(port), WEB_CONCURRENCY="2"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if get(f"{base}/api/v1/threads", key)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        status, body, _ = get(f"{base}/api/v1/threads", key)
        assert status == 200 and json.loads(body)["results"] == []
        status, body, content_type = get(f"{base}/static/admin/css/base.css")
        assert status == 200 and content_type.startswith("text/css") and body
        assert len(workers_of(proc.pid)) == 2

        proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - stopping < 10
        assert workers_of(proc.pid) == []
        assert "Traceback" not in (tmp_path / "serve.log").read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_it_refuses_to_start_with_debug_on_unless_allowed():
    refused = manage(DJANGO_DEBUG="1")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "CommandError: DJANGO_DEBUG is on: refusing to serve in production (pass --allow-debug to insist)."
    ]
    assert manage("--allow-debug", "--dry-run", DJANGO_DEBUG="1").returncode == 0


def test_port_and_workers_come_from_flags_then_environment_then_defaults():
    defaults = json.loads(manage("--dry-run").stdout)
    assert (defaults["address"], defaults["port"]) == ("127.0.0.1", 8000)
    assert defaults["workers"] == 2 * len(os.sched_getaffinity(0))  # two a core (serve.WORKERS_PER_CORE)
    from_env = json.loads(manage("--dry-run", PORT="9123", WEB_CONCURRENCY="3").stdout)
    assert (from_env["port"], from_env["workers"]) == (9123, 3)
    flags = ["--dry-run", "--host", "0.0.0.0", "--port", "9200", "--workers", "5"]
    from_flags = json.loads(manage(*flags, PORT="9123", WEB_CONCURRENCY="3").stdout)
    assert (from_flags["address"], from_flags["port"], from_flags["workers"]) == ("0.0.0.0", 9200, 5)


@pytest.mark.parametrize("env", [{"PORT": "http"}, {"WEB_CONCURRENCY": "0"}])
def test_a_bad_port_or_worker_count_is_one_line_and_status_1(env):
    result = manage("--dry-run", **env)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
