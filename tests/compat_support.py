"""Helpers shared by the seed-surface tests: what the canonical API says about a thread, and the
production server (``manage.py serve``) for the tests that drive the field's own SDKs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from threads.api.tokens import ChatToken

from .conftest import Api, url
from .test_serve import ROOT, database_url, free_port, serve_env


def chat_api(thread) -> Api:
    return Api(str(ChatToken.for_thread(thread)))


def canonical(api: Api, thread_id) -> dict:
    response = api.get(url(thread_id))
    assert response.status_code == 200, response.content
    return response.json()


def last_event(api: Api, thread_id) -> dict:
    response = api.get(url(thread_id, "/history"))
    assert response.status_code == 200, response.content
    return response.json()["results"][0]


def _status(address: str) -> int | None:
    try:
        with urllib.request.urlopen(address, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextmanager
def served(log: Path, workers: int = 2) -> Iterator[str]:
    """``manage.py serve`` on the test database (SQLite or PostgreSQL, as the suite runs) on a free
    port, in its own process group; yields its base URL once it answers, stops it with SIGTERM.
    What it answers comes from committed rows: its tests use a transactional database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT,
            env=serve_env(DATABASE_URL=database_url()),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while _status(f"{base}/api/v1/threads") != 401:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start; see {log}:\n{log.read_text(errors='replace')}")
                time.sleep(0.2)
            yield base
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
