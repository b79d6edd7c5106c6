"""Fault survival: concurrent PATCH load against ``manage.py serve`` with production settings,
while PostgreSQL is restarted (immediate stop: a crash, then recovery), while its connections are
killed (``pg_terminate_backend``) and while the server's workers are killed with SIGKILL. The
service must answer every request with a 200 or the error envelope (503 while the database is
away; a killed worker's in-flight requests may lose their connection), never hang, recover by
itself, and keep every write it acknowledged with a 200.

The test makes its own PostgreSQL cluster in a temporary directory on a free port (so the
machine's cluster on 5432 is not touched), runs it as the ``postgres`` OS user when we are root,
and removes it afterwards. Without PostgreSQL's binaries it is skipped.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .components import REQUEST_TIMEOUT, Cluster, Serve, call, pg_bin_or_skip

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 8  # concurrent clients
KEYS_PER_THREAD = 60  # distinct variables written per thread (the limit is 64)
THREADS = 600  # a third for each test under load: at most 12,000 writes each


@dataclass
class Result:
    started: float
    elapsed: float
    thread_id: str
    key: str
    outcome: int | str
    body: object


class Load:
    """CLIENTS threads PATCHing a distinct variable per request until stopped."""

    def __init__(self, base: str, api_key: str, thread_ids: list[str]) -> None:
        self.base, self.api_key, self.thread_ids = base, api_key, thread_ids
        self.numbers = itertools.count()
        self.limit = len(thread_ids) * KEYS_PER_THREAD
        self.results: list[Result] = []
        self.stopping = threading.Event()
        self.clients = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def _client(self) -> None:
        while not self.stopping.is_set():
            n = next(self.numbers)
            if n >= self.limit:
                return
            # Consecutive requests go to different threads: the load is not one row lock's queue.
            thread_id, key = self.thread_ids[n % len(self.thread_ids)], f"k{n}"
            started = time.monotonic()
            outcome, body = call(
                self.base, self.api_key, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {key: f"v{n}"}}
            )
            self.results.append(Result(started, time.monotonic() - started, thread_id, key, outcome, body))
            if not isinstance(outcome, int) or outcome == 503:
                # No answer, or "unavailable": back off as a client would, rather than spin through
                # the bounded budget of writes before the database is back.
                time.sleep(0.05)

    def __enter__(self) -> Load:
        for client in self.clients:
            client.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for client in self.clients:
            client.join(timeout=REQUEST_TIMEOUT + 5)

    def first_200_after(self, moment: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [r.started for r in list(self.results) if r.outcome == 200 and r.started >= moment]
            if done:
                return min(done)
            time.sleep(0.1)
        return None


@dataclass
class Service:
    cluster: Cluster
    server: Serve
    api_key: str
    thread_ids: list[str]

    def load(self, part: int) -> Load:
        """Load on one third of the threads: each test writes to its own."""
        size = len(self.thread_ids) // 3
        return Load(self.server.base, self.api_key, self.thread_ids[part * size : (part + 1) * size])


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    bin_dir = pg_bin_or_skip()
    cluster = Cluster(bin_dir)
    server = None
    try:
        cluster.init()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "THROTTLE_"))},
            "DATABASE_URL": cluster.url,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "THROTTLE_API_KEY": "",
            "LOG_LEVEL": "WARNING",
        }
        manage = [sys.executable, "manage.py"]
        for command in (["migrate", "--noinput"], ["create_org", "faults"]):
            subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
        created = subprocess.run(
            [*manage, "create_api_key", "--org", "faults"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        api_key = created.stdout.strip().splitlines()[-1]
        server = Serve(env, tmp_path_factory.mktemp("faults") / "serve.log")
        thread_ids = []
        for _ in range(THREADS):
            status, body = call(server.base, api_key, "POST", "/api/v1/threads", {"title": "faults"})
            assert status == 201, body
            thread_ids.append(body["id"])
        yield Service(cluster, server, api_key, thread_ids)
    finally:
        if server is not None:
            server.stop()
        cluster.destroy()


def stored_variables(service: Service) -> dict[str, dict]:
    stored = {}
    for thread_id in service.thread_ids:
        status, body = call(service.server.base, service.api_key, "GET", f"/api/v1/threads/{thread_id}")
        assert status == 200, body
        stored[thread_id] = body["variables"]
    return stored


def lost_writes(service: Service, results: list[Result]) -> list[Result]:
    stored = stored_variables(service)
    return [r for r in results if r.outcome == 200 and stored[r.thread_id].get(r.key) != f"v{r.key[1:]}"]


def is_envelope(body: object, code: str) -> bool:
    return isinstance(body, dict) and set(body) == {"error"} and body["error"].get("code") == code


def test_a_chunked_body_is_refused_by_the_real_server(service):
    """The server accepts chunked bodies but Django reads Content-Length bytes only: the service
    must refuse one (411), not answer 200 to a PATCH it took for empty."""
    thread_id = service.thread_ids[0]
    connection = http.client.HTTPConnection("127.0.0.1", service.server.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(
            "PATCH",
            f"/api/v1/threads/{thread_id}",
            body=iter([b'{"title": ', b'"chunked"}']),
            headers={"Authorization": f"Bearer {service.api_key}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())["error"]["code"]) == (411, "length_required")
    finally:
        connection.close()
    status, body = call(service.server.base, service.api_key, "GET", f"/api/v1/threads/{thread_id}")
    assert status == 200 and body["title"] == "faults"


def test_a_postgresql_restart_mid_load_is_503_then_recovers_and_loses_no_write(service, figures):
    with service.load(0) as load:
        time.sleep(3)
        down = time.monotonic()
        service.cluster.stop("immediate")  # a crash: no shutdown checkpoint, recovery from WAL
        time.sleep(3)
        service.cluster.start()  # returns once it accepts connections again (after recovery)
        up = time.monotonic()
        recovered = load.first_200_after(up, timeout=30)
        time.sleep(2)
    results = load.results
    outcomes = {r.outcome for r in results}
    unavailable = [r for r in results if r.outcome == 503]
    lost = lost_writes(service, results)
    acknowledged = sum(r.outcome == 200 for r in results)
    recovery = f"recovered {recovered - up:.1f}s after the restart" if recovered else "NOT recovered"
    figures["faults: PostgreSQL restart"] = (
        f"1 restart (immediate stop, {up - down:.1f}s down), {len(results)} requests, {acknowledged} "
        f"acknowledged writes, {len(unavailable)} answered 503, writes lost: {len(lost)}, {recovery}"
    )

    assert outcomes <= {200, 503}, sorted(map(str, outcomes))  # no 500, no hang, no lost connection
    assert "Traceback" not in service.server.log_text()
    assert all(is_envelope(r.body, "service_unavailable") for r in unavailable)
    assert unavailable, "the restart was not noticed"
    assert max(r.elapsed for r in results) < REQUEST_TIMEOUT
    assert recovered is not None and recovered - up < 10, "the service did not recover by itself"
    assert {r.outcome for r in results if r.started >= recovered + 1} == {200}
    assert acknowledged > 0 and lost == []


def test_killing_workers_mid_load_loses_no_acknowledged_write(service, figures):
    kills = []
    with service.load(1) as load:
        for _ in range(2):
            time.sleep(2)
            workers = service.server.workers()
            assert workers, "the server has no workers"
            os.kill(workers[0], signal.SIGKILL)
            kills.append(time.monotonic())
        time.sleep(1)
        respawned = time.monotonic() + 15
        while len(service.server.workers()) < 2 and time.monotonic() < respawned:
            time.sleep(0.1)
        recovered = load.first_200_after(time.monotonic(), timeout=15)
        time.sleep(2)
    results = load.results
    dropped = [r for r in results if not isinstance(r.outcome, int)]
    lost = lost_writes(service, results)
    acknowledged = sum(r.outcome == 200 for r in results)
    figures["faults: worker SIGKILL"] = (
        f"{len(kills)} workers killed, {len(results)} requests, {acknowledged} acknowledged writes, "
        f"{len(dropped)} connections dropped by a dying worker, writes lost: {len(lost)}"
    )

    assert service.server.proc.poll() is None, "the server's main process died"
    assert len(service.server.workers()) == 2, "the server did not replace the killed workers"
    assert {r.outcome for r in results if isinstance(r.outcome, int)} == {200}
    assert len(dropped) <= CLIENTS * len(kills), [r.outcome for r in dropped]
    assert max(r.elapsed for r in results) < REQUEST_TIMEOUT
    assert recovered is not None
    assert {r.outcome for r in results if r.started >= kills[-1] + 3} == {200}
    assert acknowledged > 0 and lost == []


def test_killed_database_connections_are_replaced_at_once_and_lose_no_write(service, figures):
    """Each worker notices that its connection was closed before it sends the next query (a poll of
    the socket, no round trip) and opens a new one: only a request caught mid-query gets a 503."""
    with service.load(2) as load:
        time.sleep(2)
        killed = service.cluster.terminate_connections()
        moment = time.monotonic()
        recovered = load.first_200_after(moment, timeout=10)
        time.sleep(2)
    results = load.results
    unavailable = [r for r in results if r.outcome == 503]
    lost = lost_writes(service, results)
    acknowledged = sum(r.outcome == 200 for r in results)
    figures["faults: connections killed"] = (
        f"{killed} connections terminated, {len(results)} requests, {acknowledged} acknowledged writes, "
        f"{len(unavailable)} answered 503, writes lost: {len(lost)}"
    )

    assert killed >= 1
    assert {r.outcome for r in results} <= {200, 503}, sorted(map(str, {r.outcome for r in results}))
    assert all(is_envelope(r.body, "service_unavailable") for r in unavailable)
    assert len(unavailable) <= killed  # at most the request each killed connection was running
    assert recovered is not None and recovered - moment < 2
    assert {r.outcome for r in results if r.started >= moment + 1} == {200}
    assert acknowledged > 0 and lost == []
