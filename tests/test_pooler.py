"""The service behind PgBouncer in transaction mode (``pool_mode = transaction``), started by the
tests themselves in front of a throw-away cluster: with ``DATABASE_POOLER=transaction`` everything
works (the canonical API tests, the concurrency race, racing PATCHes through ``manage.py serve``,
a server restart) and no session state is left on a connection; with the default settings every
answer is a 200 or the clear 503 ``database_misconfigured``, never a 500 and never another
client's rows.

PgBouncer lends ``POOL_SIZE`` server connections to more clients than that, and hands them out in
turn (``server_round_robin``), so that consecutive transactions of one client do run on different
server connections. The cluster's time zone is not UTC, as Django would otherwise set it on each
session. Skipped without PostgreSQL's server binaries or PgBouncer (.ci/pgbouncer-deps.sh).
"""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from .components import Cluster, Serve, call, manage, new_api_key, pg_bin_or_skip, service_env
from .pgbouncer import PgBouncer, pgbouncer_bin

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "pooled"
POOL_SIZE = 3  # server connections; `serve --workers 4` and the test clients are more
WORKERS = 4
SERVER_TIME_ZONE = "America/New_York"


class Stack:
    def __init__(self, cluster: Cluster, bouncer: PgBouncer, tmp: Path) -> None:
        self.cluster, self.bouncer, self.tmp = cluster, bouncer, tmp
        self.url = bouncer.url(DATABASE)

    def env(self, **settings: str) -> dict[str, str]:
        return service_env(self.url, **settings)

    def serve(self, name: str, **settings: str) -> Serve:
        return Serve(self.env(**settings), self.tmp / f"{name}.log", workers=WORKERS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    bin_dir = pg_bin_or_skip()
    if pgbouncer_bin() is None:
        pytest.skip("pgbouncer is not installed (.ci/pgbouncer-deps.sh installs Debian's package)")
    cluster = Cluster(bin_dir, database=DATABASE, settings={"timezone": SERVER_TIME_ZONE, "max_connections": "60"})
    bouncer = None
    try:
        cluster.init()
        bouncer = PgBouncer(cluster.port, pool_size=POOL_SIZE)
        bouncer.start()
        stack = Stack(cluster, bouncer, tmp_path_factory.mktemp("pooler"))
        # The schema goes through the pooler too, with the documented setting.
        manage(stack.env(DATABASE_POOLER="transaction"), "migrate", "--noinput", timeout=300)
        yield stack
    finally:
        if bouncer is not None:
            bouncer.stop()
        cluster.destroy()


def threads_of(base: str, key: str, count: int) -> list[str]:
    """``count`` new threads (a request answered 503 ``database_misconfigured`` is sent again)."""
    ids = []
    while len(ids) < count:
        status, body = call(base, key, "POST", "/api/v1/threads", {"title": f"t{len(ids)}"})
        if status == 503 and is_envelope(body, "database_misconfigured"):
            continue
        assert status == 201, body
        ids.append(body["id"])
    return ids


def is_envelope(body: object, code: str) -> bool:
    return isinstance(body, dict) and set(body) == {"error"} and body["error"].get("code") == code


def server_connections(stack: Stack) -> int:
    """The server connections PgBouncer holds to the service's database."""
    return sum(1 for server in stack.bouncer.show("SERVERS") if server["database"] == DATABASE)


SUITES = ["tests/test_api_threads.py", "tests/test_concurrency.py"]


def test_the_api_tests_and_the_concurrency_race_pass_through_the_pooler_with_the_setting(stack, figures):
    """tests/test_api_threads.py and tests/test_concurrency.py as they are, their database (pytest-
    django's test_pooled, made through the pooler) behind PgBouncer: 0 failures, 0 errors."""
    env = {
        **stack.env(DATABASE_POOLER="transaction"),
        "LOG_LEVEL": "ERROR",
    }
    started = time.monotonic()
    # --reuse-db: the test database is made through the pooler and left to the cluster's removal
    # (PgBouncer's idle server connections to it would keep DROP DATABASE from running).
    command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--reuse-db", *SUITES]
    done = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.fullmatch(r"=* ?\d+ passed(, \d+ skipped)? in .*", summary), summary
    figures["pooler: API + concurrency tests through PgBouncer"] = (
        f"{summary.strip('= ')} ({time.monotonic() - started:.0f} s with start-up)"
    )


def test_racing_patches_through_serve_and_the_pooler_lose_no_write(stack, figures):
    """16 clients PATCH distinct variables of 20 hot threads through `manage.py serve` (4 workers)
    and PgBouncer (3 server connections): every request 200, every variable stored, each thread's
    version counts its writes."""
    key = new_api_key(stack.env(DATABASE_POOLER="transaction"), "race")
    server = stack.serve("race", DATABASE_POOLER="transaction")
    try:
        ids = threads_of(server.base, key, 20)
        numbers = itertools.count()
        total = 1200  # 60 variables a thread (the limit is 64)

        def client() -> list[tuple]:
            results = []
            while (n := next(numbers)) < total:
                thread_id = ids[n % len(ids)]
                status, body = call(
                    server.base, key, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {f"k{n}": str(n)}}
                )
                results.append((n, thread_id, status, body))
            return results

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            results = [r for part in pool.map(lambda _: client(), range(16)) for r in part]
        elapsed = time.monotonic() - started
        statuses = Counter(status for _, _, status, _ in results)
        assert statuses == {200: total}, (statuses, [r for r in results if r[2] != 200][:3], server.log_text()[-3000:])
        lost = []
        for thread_id in ids:
            status, body = call(server.base, key, "GET", f"/api/v1/threads/{thread_id}")
            assert status == 200, body
            mine = {f"k{n}": str(n) for n, t, _, _ in results if t == thread_id}
            lost += [name for name, value in mine.items() if body["variables"].get(name) != value]
            assert body["version"] == 1 + len(mine)
        assert lost == []
        assert 0 < server_connections(stack) <= POOL_SIZE < WORKERS
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
    figures["pooler: racing PATCHes through serve + PgBouncer (setting on)"] = (
        f"{total} requests, {statuses[200]} 200s, 0 errors, 0 lost, {total / elapsed:.0f} req/s"
    )


def mixed_load(base: str, keys: dict[str, str], ids: dict[str, list[str]], requests: int) -> list[tuple]:
    """``requests`` requests from 12 clients over two organizations, a quarter each of PATCH, GET,
    list and feed; each result is (kind, organization, thread id, status, body, wrong), ``wrong``
    saying what a 200's body got wrong (another thread, another organization's rows)."""
    numbers = itertools.count()
    kinds = ("patch", "get", "list", "feed")

    def one(n: int) -> tuple:
        org = "north" if n % 2 else "south"
        key, own = keys[org], ids[org]
        kind, thread_id = kinds[(n // 2) % 4], own[n % len(own)]
        wrong = None
        if kind == "patch":
            status, body = call(
                base, key, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {f"k{n % 50}": str(n)}}
            )
            if status == 200 and (body.get("id") != thread_id or body["variables"].get(f"k{n % 50}") != str(n)):
                wrong = body
        elif kind == "get":
            status, body = call(base, key, "GET", f"/api/v1/threads/{thread_id}")
            if status == 200 and body.get("id") != thread_id:
                wrong = body
        elif kind == "list":
            status, body = call(base, key, "GET", "/api/v1/threads?limit=10")
            if status == 200 and not {t["id"] for t in body["results"]} <= set(own):
                wrong = body
        else:
            status, body = call(base, key, "GET", "/api/v1/events?limit=20")
            if status == 200 and not {e["threadId"] for e in body["results"]} <= set(own):
                wrong = body
        return kind, org, thread_id, status, body, wrong

    def client() -> list[tuple]:
        results = []
        while (n := next(numbers)) < requests:
            results.append(one(n))
        return results

    with ThreadPoolExecutor(12) as pool:
        return [r for part in pool.map(lambda _: client(), range(12)) for r in part]


def test_the_default_settings_behind_the_pooler_answer_200_or_the_clear_503_never_a_500(stack, figures):
    """No DATABASE_POOLER, psycopg preparing after 5 runs: a prepared statement is then missing on
    the next server connection. The answer is the 503 naming the setting (and a log line naming
    it), never a 500, and a 200 always carries the caller's own rows."""
    env = stack.env()
    keys = {org: new_api_key(env, org) for org in ("north", "south")}
    server = stack.serve("defaults")
    try:
        ids = {org: threads_of(server.base, key, 10) for org, key in keys.items()}  # retried on a 503
        before = len(server.log_text())  # the setup's own 503s are logged too: not counted below
        results = mixed_load(server.base, keys, ids, 2000)
        log = server.log_text()[before:]
    finally:
        server.stop()
    by_kind = Counter((kind, status) for kind, _, _, status, _, _ in results)
    statuses = Counter(status for _, _, _, status, _, _ in results)
    unavailable = [body for _, _, _, status, body, _ in results if status == 503]
    assert set(statuses) <= {200, 503}, (by_kind, [r for r in results if r[3] not in (200, 503)][:3], log[-3000:])
    assert all(is_envelope(body, "database_misconfigured") for body in unavailable), unavailable[:3]
    assert all("DATABASE_POOLER=transaction" in body["error"]["message"] for body in unavailable)
    assert [r for r in results if r[5] is not None] == []  # never another thread's or organization's rows
    # The load did meet the problem, and each time the log names the setting in one line.
    assert unavailable, by_kind
    lines = [line for line in log.splitlines() if "set DATABASE_POOLER=transaction" in line]
    assert len(lines) == len(unavailable), (len(lines), len(unavailable), log[-3000:])
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-3000:]
    figures["pooler: mixed load with the default settings behind PgBouncer"] = (
        f"{len(results)} requests: "
        + ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(by_kind.items()))
        + "; 0 500s, 0 wrong rows"
    )


ROUNDS_SCRIPT = """
import json, threading
from django.db import connection

SQL = {"a": "SELECT %s::int AS n, 'a' AS who", "b": "SELECT %s::int + 1000000 AS n, 'b' AS who"}
ROUNDS = 300
outcome = {"own": 0, "other": 0, "errors": 0}
lock = threading.Lock()

def client(me):
    for n in range(ROUNDS):
        try:
            with connection.cursor() as cursor:
                cursor.execute(SQL[me], [n])
                row = cursor.fetchone()
        except Exception:
            row = None
        expected = (n if me == "a" else n + 1000000, me)
        with lock:
            outcome["own" if row == expected else "errors" if row is None else "other"] += 1
    connection.close()

clients = [threading.Thread(target=client, args=(me,)) for me in "ab" * 3]
for t in clients: t.start()
for t in clients: t.join()
print(json.dumps(outcome))
"""


def rounds(env: dict[str, str]) -> dict[str, int]:
    return json.loads(manage(env, "shell", "-c", ROUNDS_SCRIPT, timeout=300).strip().splitlines()[-1])


def test_no_client_ever_gets_another_clients_statements_rows(stack, figures):
    """Six clients (Django connections), two statements with one parameter each, 300 rounds each,
    through the pooler. With the setting each always gets its own SQL's rows; with the defaults
    too, or an error (a 503 at the doors), never the other statement's rows."""
    documented = rounds(stack.env(DATABASE_POOLER="transaction"))
    assert documented == {"own": 1800, "other": 0, "errors": 0}
    defaults = rounds(stack.env())
    assert defaults["other"] == 0 and defaults["own"] + defaults["errors"] == 1800
    figures["pooler: 6 clients x 300 rounds of two 1-parameter statements"] = (
        f"setting on: {documented['own']} own rows, 0 errors; defaults: {defaults['own']} own rows, "
        f"{defaults['errors']} errors, 0 other's rows"
    )


def test_psycopgs_own_statement_names_would_give_a_client_another_clients_rows(stack, figures):
    """The hazard the random names of threads_project/postgres/base.py remove: two plain psycopg
    connections, preparing at once, behind the pooler."""
    sql = {"a": "SELECT %s::int AS n, 'a' AS who", "b": "SELECT %s::int + 1000000 AS n, 'b' AS who"}
    crossed = 0
    with (
        psycopg.connect(stack.url, autocommit=True, prepare_threshold=0) as a,
        psycopg.connect(stack.url, autocommit=True, prepare_threshold=0) as b,
    ):
        for n in range(100):
            for me, conn in (("a", a), ("b", b)):
                try:
                    row = conn.execute(sql[me], [n]).fetchone()
                except psycopg.Error:
                    continue
                crossed += row[1] != me
    assert crossed > 0
    figures["pooler: plain psycopg names, 2 clients x 100 rounds (control)"] = f"{crossed} answers of the other's SQL"


LOAD_CLIENTS = 8


def test_a_server_restart_behind_the_pooler_with_the_setting_leaves_no_stale_statement(stack, figures):
    """PATCH and GET load through serve and the pooler while PostgreSQL restarts: 200s, or the 503
    of a database that is away while it is; afterwards every request is a 200, and nothing says a
    prepared statement "already exists" or "does not exist"."""
    env = stack.env(DATABASE_POOLER="transaction")
    key = new_api_key(env, "restart")
    server = stack.serve("restart", DATABASE_POOLER="transaction")
    stopping = threading.Event()
    results: list[tuple[float, int | str, object]] = []
    try:
        ids = threads_of(server.base, key, 8)
        numbers = itertools.count()

        def client() -> None:
            while not stopping.is_set():
                n = next(numbers)
                thread_id = ids[n % len(ids)]
                if n % 2:
                    outcome = call(
                        server.base, key, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {"n": str(n)}}
                    )
                else:
                    outcome = call(server.base, key, "GET", f"/api/v1/threads/{thread_id}")
                results.append((time.monotonic(), *outcome))
                if outcome[0] != 200:
                    time.sleep(0.05)

        clients = [threading.Thread(target=client, daemon=True) for _ in range(LOAD_CLIENTS)]
        for thread in clients:
            thread.start()
        time.sleep(1.5)
        stack.cluster.stop("fast")
        time.sleep(1)
        stack.cluster.start()
        back = time.monotonic()
        time.sleep(3)
        stopping.set()
        for thread in clients:
            thread.join(timeout=15)
        after = [call(server.base, key, "GET", f"/api/v1/threads/{thread_id}")[0] for thread_id in ids * 25]
        log = server.log_text()
    finally:
        stopping.set()
        server.stop()
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert all(is_envelope(body, "service_unavailable") for _, status, body in results if status == 503)
    late = Counter(status for at, status, _ in results if at > back + 1.5)
    assert late and set(late) == {200}, late
    assert Counter(after) == {200: len(after)}
    assert "already exists" not in log and "does not exist" not in log and "Traceback" not in log, log[-3000:]
    figures["pooler: PostgreSQL restart behind PgBouncer (setting on)"] = (
        f"{len(results)} requests ({dict(statuses)}), then {len(after)} GETs all 200; 0 stale statements"
    )


# A statement that leaves state on the session, at the start of a statement or anywhere in it
# (SET LOCAL, SET CONSTRAINTS and SET TRANSACTION last as long as the transaction).
SESSION_STATEMENT = re.compile(
    r"(?:SET\s+(?!LOCAL\b|CONSTRAINTS\b|TRANSACTION\b)|RESET\b|DISCARD\b|LISTEN\b|UNLISTEN\b|DEALLOCATE\b|PREPARE\b|"
    r"CREATE\s+(?:TEMP|TEMPORARY)\b|DECLARE\b)",
    re.IGNORECASE,
)
SESSION_CALL = re.compile(
    r"pg_(?:try_)?advisory_lock|pg_advisory_unlock|set_config\s*\([^)]*,\s*false\s*\)|\bWITH\s+HOLD\b",
    re.IGNORECASE,
)


def leaves_session_state(logged: str) -> bool:
    """For a logged ``statement: SQL`` or ``execute <name>: SQL``."""
    sql = logged.split(": ", 1)[1] if ": " in logged else logged
    return bool(SESSION_STATEMENT.match(sql.lstrip()) or SESSION_CALL.search(sql))


def statements_of(cluster: Cluster, database: str) -> list[str]:
    """Every statement the server ran for ``database`` (log lines ``database|LOG: …``)."""
    text = (cluster.root / "log").read_text(errors="replace")
    return [
        line.split("LOG:", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith(f"{database}|") and "LOG:" in line
    ]


def operator_pages(base: str, env: dict[str, str], org: str) -> None:
    """An operator logs in (a session in the database) and opens the thread list."""
    manage(env, "create_user", f"{org}-op", "--org", org, "--password", "a-long-pass-phrase")
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = browser.open(f"{base}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"csrfmiddlewaretoken": token, "username": f"{org}-op", "password": "a-long-pass-phrase"}
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=urllib.parse.urlencode(form).encode(), headers={"Referer": base}
    )
    with browser.open(request, timeout=10) as answer:
        assert answer.url.endswith("/ops/threads/") and answer.status == 200
    assert "t0" in browser.open(f"{base}/ops/threads/", timeout=10).read().decode()


def exercise(env: dict[str, str], tmp: Path, name: str) -> None:
    """What a day of the service does to its connections: the API (writes, reads, lists, the
    feed, the lane), the operator pages' login, the webhook worker and the commands."""
    env = {
        **env,
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_TIMEOUT_SECONDS": "1",
        "DJANGO_SECURE_COOKIES": "0",
    }
    key = new_api_key(env, name)
    server = Serve(env, tmp / f"{name}.log", workers=1)
    try:
        ids = threads_of(server.base, key, 3)
        for n in range(12):  # past psycopg's threshold of 5 runs
            for thread_id in ids:
                assert (
                    call(server.base, key, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {"n": str(n)}})[0]
                    == 200
                )
                assert call(server.base, key, "GET", f"/api/v1/threads/{thread_id}")[0] == 200
            assert call(server.base, key, "GET", "/api/v1/threads")[0] == 200
            assert call(server.base, key, "GET", "/api/v1/events")[0] == 200
        status, body = call(server.base, key, "GET", f"/api/v1/threads/{ids[0]}")
        # Times read back in UTC whatever the server's zone: the thread was made moments ago.
        assert status == 200 and body["createdAt"].endswith("Z")
        created = datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - created).total_seconds()) < 120, body["createdAt"]
        assert call(server.base, key, "POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hooks"})[0] == 201
        operator_pages(server.base, env, name)
    finally:
        server.stop()
    manage(env, "deliver_webhooks", "--once")
    manage(env, "export_threads", "--org", name)


def test_with_the_setting_the_service_leaves_no_session_state_on_a_connection(stack, figures):
    """Every statement the service sends, from the server's log (``log_statement = all`` for a
    database of its own, reached directly so that each line is the service's): with the setting no
    session-level SET or set_config, advisory lock, LISTEN, held cursor, temporary table or named
    prepared statement; with the defaults the same log does show them (the check can see them)."""
    admin = f"postgres://postgres@127.0.0.1:{stack.cluster.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        for database in ("direct_pooled", "direct_defaults"):
            conn.execute(f"CREATE DATABASE {database}")
            conn.execute(f"ALTER DATABASE {database} SET log_statement = 'all'")
    conn = psycopg.connect(admin, autocommit=True)
    conn.execute("ALTER SYSTEM SET log_line_prefix = '%d|'")
    conn.execute("SELECT pg_reload_conf()")
    conn.close()
    for database, settings in (("direct_pooled", {"DATABASE_POOLER": "transaction"}), ("direct_defaults", {})):
        env = service_env(f"postgres://postgres@127.0.0.1:{stack.cluster.port}/{database}", **settings)
        manage(env, "migrate", "--noinput", timeout=300)
        exercise(env, stack.tmp, database.replace("_", "-"))
    pooled, defaults = statements_of(stack.cluster, "direct_pooled"), statements_of(stack.cluster, "direct_defaults")
    assert len(pooled) > 300
    assert [s for s in pooled if leaves_session_state(s)] == []
    assert [s for s in pooled if re.match(r"(?:execute|parse|bind) (?!<unnamed>)", s)] == []
    assert any("set_config('TimeZone'" in s and leaves_session_state(s) for s in defaults)  # Django's
    assert any(s.endswith("synchronous_commit TO off") and leaves_session_state(s) for s in defaults)  # the worker's
    assert any(re.match(r"execute _pg3_\d+", s) for s in defaults)
    figures["pooler: statements checked for session state (setting on)"] = f"{len(pooled)}, 0 session-level"
