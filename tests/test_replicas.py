"""Read replicas with the real things: a primary and a hot standby made with ``pg_basebackup -R``
(tests/replica.py), a Redis of their own, and ``manage.py serve`` (2 workers) with
``DATABASE_URL`` = the primary and ``DATABASE_REPLICA_URLS`` = the standby. Each server counts the
statements it runs (``pg_stat_statements``), so where a read went is measured, not assumed.

- the lag-tolerant reads (list, search, history, the operator list, the admin changelists) run on
  the standby, the writes on the primary;
- read-your-writes: under replica lag (``recovery_min_apply_delay``), a PATCH and then a GET, a list
  and a history read by the same caller see the new version every time; another caller may read
  the replica's older one;
- a replica further behind than ``DATABASE_REPLICA_MAX_LAG_SECONDS`` is skipped: fresh reads;
- the standby stopped and started mid-load: every read answered, 0 errors;
- the change feed reads the primary: an event held open there is never skipped (and the standby's
  horizon, which would skip it, is shown passing it).
"""

from __future__ import annotations

import http.cookiejar
import itertools
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from threads.feed import HORIZON_SQL

from .components import Cluster, Serve, call
from .replica import READS, WRITES, Redis, Standby, binaries_or_skip, primary_cluster, statements

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parent.parent
MAX_LAG = 3  # DATABASE_REPLICA_MAX_LAG_SECONDS of the server under test
WINDOW = 5  # DATABASE_READ_YOUR_WRITES_SECONDS
VERDICT_AGE = 1.2  # a replica's verdict is at most a second old: wait this long for a new one
PASSWORD = "replica-operator-pw-1"


@dataclass
class Service:
    primary: Cluster
    standby: Standby
    server: Serve
    writer: str  # an API key that writes
    reader: str  # another caller, which only reads
    thread_ids: list[str]

    def counts(self) -> dict[str, int]:
        return {
            "primary reads": statements(self.primary, READS),
            "replica reads": statements(self.standby, READS),
            "primary writes": statements(self.primary, WRITES),
            "replica writes": statements(self.standby, WRITES),
        }


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    bin_dir = binaries_or_skip()
    if not any(Path(p, "redis-server").exists() for p in os.environ.get("PATH", "").split(":")):
        pytest.skip("redis-server is not installed (the workers' shared cache for read-your-writes)")
    primary = primary_cluster(bin_dir)
    standby = redis = server = None
    try:
        standby = Standby(primary)
        standby.init()
        redis = Redis()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "THROTTLE_"))},
            "DATABASE_URL": primary.url,
            "DATABASE_REPLICA_URLS": standby.url,
            "DATABASE_REPLICA_MAX_LAG_SECONDS": str(MAX_LAG),
            "DATABASE_READ_YOUR_WRITES_SECONDS": str(WINDOW),
            "REDIS_URL": redis.url,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_COOKIES": "0",  # the operator's session cookie over plain HTTP
            "THROTTLE_API_KEY": "",
            "THROTTLE_USER": "",
            "LOG_LEVEL": "WARNING",
        }
        manage(env, "migrate", "--noinput")
        manage(env, "create_org", "faults")
        writer = manage(env, "create_api_key", "--org", "faults", "--name", "writer").splitlines()[-1]
        reader = manage(env, "create_api_key", "--org", "faults", "--name", "reader", "--scope", "read")
        manage(env, "create_user", "operator", "--org", "faults", "--superuser", "--password", PASSWORD,
               "--skip-password-validation")  # fmt: skip
        server = Serve(env, tmp_path_factory.mktemp("replicas") / "serve.log")
        thread_ids = []
        for n in range(30):
            status, body = call(server.base, writer, "POST", "/api/v1/threads", {"title": f"replica {n}"})
            assert status == 201, body
            thread_ids.append(body["id"])
        standby.caught_up()
        yield Service(primary, standby, server, writer, reader.splitlines()[-1], thread_ids)
    finally:
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
        if standby is not None:
            standby.destroy()
        primary.destroy()


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before}


def ok(service: Service, key: str, path: str) -> object:
    status, body = call(service.server.base, key, "GET", path)
    assert status == 200, (path, status, body)
    return body


class Browser:
    """An operator's browser: a session cookie from a real login through the login form."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.status, response.read().decode()

    def login(self, username: str, password: str) -> None:
        _, page = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        with self.opener.open(self.base + "/accounts/login/", form.encode(), timeout=10) as response:
            assert response.url.endswith("/ops/threads/"), response.url  # signed in, sent on to the list


def test_lag_tolerant_reads_run_on_the_replica_and_writes_on_the_primary(service, figures):
    service.standby.caught_up()
    time.sleep(VERDICT_AGE)
    pages = {
        "list": "/api/v1/threads?limit=20",
        "search": "/api/v1/threads?search=replica%201",
        "history": f"/api/v1/threads/{service.thread_ids[0]}/history",
    }
    measured = {}
    for name, path in pages.items():
        before = service.counts()
        for _ in range(20):
            ok(service, service.reader, path)
        measured[name] = delta(before, service.counts())
    before = service.counts()
    for n in range(20):
        status, _ = call(service.server.base, service.writer, "PATCH", f"/api/v1/threads/{service.thread_ids[n]}",
                         {"variables": {"n": str(n)}})  # fmt: skip
        assert status == 200
    measured["PATCH"] = delta(before, service.counts())
    figures["replicas: statements per 20 requests (primary/replica reads, primary/replica writes)"] = "; ".join(
        f"{name} {m['primary reads']}/{m['replica reads']}, {m['primary writes']}/{m['replica writes']}"
        for name, m in measured.items()
    )
    for name in pages:
        # Each request's reads on the replica; the primary read none of these tables for them.
        assert measured[name]["replica reads"] >= 20, (name, measured[name])
        assert measured[name]["primary reads"] <= 2, (name, measured[name])
    assert measured["PATCH"]["primary writes"] >= 20 and measured["PATCH"]["replica writes"] == 0


def test_the_operator_list_and_the_admin_changelists_read_the_replica(service, figures):
    service.standby.caught_up()
    browser = Browser(service.server.base)
    browser.login("operator", PASSWORD)  # a POST: the operator's own reads go to the primary for a while
    before = service.counts()
    assert browser.get("/ops/threads/")[0] == 200
    just_after_login = delta(before, service.counts())
    assert just_after_login["replica reads"] == 0 and just_after_login["primary reads"] > 0, just_after_login
    time.sleep(WINDOW + VERDICT_AGE)
    measured = {}
    for name, path in {
        "operator list": "/ops/threads/",
        "admin threads": "/admin/threads/thread/",
        "admin events": "/admin/threads/event/",
        "admin API keys": "/admin/threads/apikey/",
    }.items():
        before = service.counts()
        for _ in range(5):
            assert browser.get(path)[0] == 200, name
        measured[name] = delta(before, service.counts())
    figures["replicas: statements per 5 page loads (primary/replica reads)"] = "; ".join(
        f"{name} {m['primary reads']}/{m['replica reads']}" for name, m in measured.items()
    )
    for name in ("operator list", "admin threads", "admin events"):
        assert measured[name]["replica reads"] >= 5 and measured[name]["primary reads"] == 0, (name, measured[name])


def test_a_caller_reads_its_own_writes_under_replica_lag_and_another_may_read_the_replica(service, figures):
    status, created = call(service.server.base, service.writer, "POST", "/api/v1/threads", {"title": "ryw-own"})
    assert status == 201
    thread_id = created["id"]
    service.standby.delay_replay(1.5)
    rounds, own_stale, other_stale = 50, Counter(), 0
    try:
        for n in range(rounds):
            status, patched = call(service.server.base, service.writer, "PATCH", f"/api/v1/threads/{thread_id}",
                                   {"variables": {"n": str(n)}})  # fmt: skip
            assert status == 200, patched
            version = patched["version"]
            seen = {
                "GET": ok(service, service.writer, f"/api/v1/threads/{thread_id}")["version"],
                "list": ok(service, service.writer, "/api/v1/threads?search=ryw-own")["results"][0]["version"],
                "history": ok(service, service.writer, f"/api/v1/threads/{thread_id}/history")["results"][0]["version"],
            }
            own_stale.update(name for name, got in seen.items() if got != version)
            other = ok(service, service.reader, "/api/v1/threads?search=ryw-own")["results"]
            other_stale += not other or other[0]["version"] != version
            time.sleep(0.1)
    finally:
        service.standby.delay_replay(0)
    figures["replicas: read-your-writes under 1.5 s replay delay"] = (
        f"{rounds} rounds of PATCH then GET, list and history by the writer: {sum(own_stale.values())} stale"
        f" answers; the other caller's list right after each PATCH was stale in {other_stale} of {rounds}"
    )
    assert own_stale == Counter()
    assert other_stale >= rounds // 4  # the replica lagged, and the other caller read it


def test_a_replica_further_behind_than_the_bound_is_skipped(service):
    service.standby.caught_up()
    status, created = call(service.server.base, service.writer, "POST", "/api/v1/threads", {"title": "lag-bound"})
    assert status == 201
    thread_id = created["id"]
    service.standby.delay_replay(2 * MAX_LAG)
    try:
        call(service.server.base, service.writer, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {"pre": "1"}})
        time.sleep(MAX_LAG + VERDICT_AGE)  # nothing replayed since the delay began: the lag passes the bound
        for n in range(4):
            status, patched = call(service.server.base, service.writer, "PATCH", f"/api/v1/threads/{thread_id}",
                                   {"variables": {"n": str(n)}})  # fmt: skip
            assert status == 200
            time.sleep(VERDICT_AGE)  # the verdicts reached before this write are gone
            listed = ok(service, service.reader, "/api/v1/threads?search=lag-bound")["results"]
            assert [row["version"] for row in listed] == [patched["version"]]
            on_standby = service.standby.query(f"SELECT version FROM threads_thread WHERE id = '{thread_id}'")
            assert on_standby != str(patched["version"])  # the replica really is behind
    finally:
        service.standby.delay_replay(0)
    service.standby.caught_up()


def test_reads_fall_back_to_the_primary_while_the_replica_stops_and_starts_mid_load(service, figures):
    service.standby.caught_up()
    time.sleep(VERDICT_AGE)
    history = f"/api/v1/threads/{service.thread_ids[1]}/history"
    paths = itertools.cycle(["/api/v1/threads?limit=20", "/api/v1/threads?search=replica", history])
    outcomes: Counter = Counter()
    stopping = threading.Event()

    def client() -> None:
        while not stopping.is_set():
            outcomes[call(service.server.base, service.reader, "GET", next(paths))[0]] += 1

    clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(2)
        service.standby.stop("fast")  # its sessions are ended, in the middle of their reads
        while_down = sum(outcomes.values())
        time.sleep(3)
        while_down = sum(outcomes.values()) - while_down
        service.standby.start()
        service.standby.wait_streaming()
        restarted = statements(service.standby)
        time.sleep(3)
    finally:
        stopping.set()
        for thread in clients:
            thread.join(timeout=15)
    back = statements(service.standby) - restarted
    figures["replicas: reads while the standby stopped and started"] = (
        f"{sum(outcomes.values())} requests ({while_down} in the 3 s it was down), by status {dict(outcomes)};"
        f" {back} reads on the standby in the 3 s after its restart"
    )
    assert set(outcomes) == {200}, outcomes
    assert while_down > 0 and back > 0  # the reads went on without it, and came back to it


def test_the_feed_never_skips_an_event_held_open_on_the_primary(service):
    import psycopg

    base, reader = service.server.base, service.reader

    def feed_page(after: str | None) -> dict:
        return ok(service, reader, "/api/v1/events?limit=1000" + (f"&after={after}" if after else ""))

    cursor, seen = None, []
    while True:  # the feed so far
        page = feed_page(cursor)
        seen += [event["id"] for event in page["results"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    org_id = service.primary.query("SELECT id FROM threads_organization WHERE slug = 'faults'")
    held = psycopg.connect(service.primary.url)
    try:
        held_id, held_txid = held.execute(
            "INSERT INTO threads_event (organization_id, thread_id, action, version, actor_type, actor_id,"
            " actor_name, changes, created_at) VALUES (%s, %s, 'updated', 1000000, 'command', 'held', 'held',"
            " '{}', now()) RETURNING id, txid",
            [org_id, service.thread_ids[2]],
        ).fetchone()
        committed = []
        for n in range(5):  # later transactions commit while it stays open
            status, body = call(base, service.writer, "PATCH", f"/api/v1/threads/{service.thread_ids[3]}",
                                {"variables": {"held": str(n)}})  # fmt: skip
            assert status == 200
            committed.append(body["version"])
        service.standby.caught_up()
        # Why the feed stays on the primary: the standby's horizon has passed the open transaction.
        assert int(service.primary.query(HORIZON_SQL)) <= held_txid < int(service.standby.query(HORIZON_SQL))
        for _ in range(10):  # readers through every worker of the server: nothing past the held event
            page = feed_page(cursor)
            assert page["results"] == [] and page["hasMore"] is False
            cursor = page["nextCursor"]
    finally:
        held.commit()
        held.close()
    later = []
    for _ in range(20):
        page = feed_page(cursor)
        later += page["results"]
        cursor = page["nextCursor"]
        if len(later) >= 6:
            break
        time.sleep(0.1)
    ids = [event["id"] for event in later]
    assert held_id in ids and len(ids) == len(set(ids)) == 6 and not set(ids) & set(seen)
    patched = [e["version"] for e in later if e["threadId"] == service.thread_ids[3]]
    assert patched == committed
