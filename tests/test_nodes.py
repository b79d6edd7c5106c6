"""Two app nodes as one service: two ``manage.py serve`` processes on different ports (two workers
each) sharing a throw-away PostgreSQL cluster and the machine's Redis (``REDIS_URL``, a database
number of its own), and two webhook workers. A rate limit counts the requests of both nodes
together; a key revoked anywhere stops working on every node within ``API_KEY_CACHE_SECONDS``;
the two workers deliver every event, none twice.

Skipped without PostgreSQL's server binaries or without Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from .components import Cluster, Serve, call, manage, new_api_key, pg_bin_or_skip, service_env
from .webhook_receiver import Receiver

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parent.parent
REDIS = ("127.0.0.1", 6379)
REDIS_DB = 13  # the tests' own: nothing else of the machine's Redis is touched
KEY_CACHE_SECONDS = 3
LIMIT = 40  # requests an hour per user


def fresh_redis_db() -> bool:
    """Whether Redis answers; if so its database REDIS_DB is emptied (counters of an earlier run
    would belong to this run's user ids)."""
    try:
        client = redis.Redis(*REDIS, db=REDIS_DB, socket_timeout=2)
        client.flushdb()
        client.close()
        return True
    except redis.RedisError:
        return False


class Nodes:
    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        self.cluster, self.tmp = cluster, tmp
        self.env = service_env(
            cluster.url,
            REDIS_URL=f"redis://{REDIS[0]}:{REDIS[1]}/{REDIS_DB}",
            API_KEY_CACHE_SECONDS=str(KEY_CACHE_SECONDS),
            THROTTLE_USER=f"{LIMIT}/hour",  # API keys unlimited (service_env)
            WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        )
        self.servers: list[Serve] = []

    def start(self) -> None:
        self.servers = [Serve(self.env, self.tmp / f"node-{n}.log") for n in "ab"]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    bin_dir = pg_bin_or_skip()
    if not fresh_redis_db():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    cluster = Cluster(bin_dir, database="nodes")
    nodes = None
    try:
        cluster.init()
        nodes = Nodes(cluster, tmp_path_factory.mktemp("nodes"))
        manage(nodes.env, "migrate", "--noinput", timeout=300)
        nodes.start()
        yield nodes
    finally:
        if nodes is not None:
            nodes.stop()
        cluster.destroy()


def test_a_rate_limit_counts_the_requests_of_both_nodes_together(nodes, figures):
    """A user's token from one node works on the other, and its budget is one: half the requests
    to each node, the limit reached at the configured count in total."""
    manage(nodes.env, "create_org", "limits")
    manage(nodes.env, "create_user", "lee", "--org", "limits", "--password", "a-long-pass-phrase")
    status, tokens = call(
        nodes.servers[0].base, "", "POST", "/api/v1/auth/token", {"username": "lee", "password": "a-long-pass-phrase"}
    )
    assert status == 200, tokens
    # A fixed window of an hour: start well inside one.
    into_hour = time.time() % 3600
    if into_hour > 3600 - 30:
        time.sleep(3600 - into_hour + 1)
    answers = [
        call(nodes.servers[n % 2].base, tokens["access"], "GET", "/api/v1/threads")[0] for n in range(LIMIT + 20)
    ]
    assert answers == [200] * LIMIT + [429] * 20
    by_node = Counter((n % 2, status) for n, status in enumerate(answers))
    assert by_node[(0, 200)] == by_node[(1, 200)] == LIMIT // 2
    figures["nodes: shared rate limit"] = (
        f"{LIMIT}/hour, {len(answers)} requests alternating over 2 nodes: {answers.count(200)} 200s, then 429s"
    )


REVOKE = """
import time
from threads.keys import api_key_revoke
from threads.models import ApiKey
api_key_revoke(ApiKey.objects.get(name="revoked"))
print(time.time())
"""


def test_a_revoked_key_stops_working_on_every_node_within_the_cache_bound(nodes, figures):
    env = nodes.env
    manage(env, "create_org", "revoke")
    key = manage(env, "create_api_key", "--org", "revoke", "--name", "revoked").strip().splitlines()[-1]
    for server in nodes.servers:  # every worker of both nodes has looked it up (and keeps it)
        assert {call(server.base, key, "GET", "/api/v1/threads")[0] for _ in range(20)} == {200}
    seen: dict[int, list[tuple[float, int | str]]] = {0: [], 1: []}
    stop = threading.Event()

    def poll(n: int) -> None:
        while not stop.is_set():
            started = time.time()
            seen[n].append((started, call(nodes.servers[n].base, key, "GET", "/api/v1/threads")[0]))
            time.sleep(0.02)

    pollers = [threading.Thread(target=poll, args=(n,), daemon=True) for n in (0, 1)]
    for poller in pollers:
        poller.start()
    revoked_at = float(manage(env, "shell", "-c", REVOKE).strip().splitlines()[-1])
    time.sleep(KEY_CACHE_SECONDS + 2)
    stop.set()
    for poller in pollers:
        poller.join(timeout=15)
    delays = []
    for n in (0, 1):
        after = [(at, status) for at, status in seen[n] if at > revoked_at]
        assert {status for _, status in after} <= {200, 401}
        accepted = [at for at, status in after if status == 200]
        delay = (max(accepted) - revoked_at) if accepted else 0.0
        # The last request that got in started within the bound; from then on every one is refused.
        assert delay <= KEY_CACHE_SECONDS, (n, delay)
        assert all(status == 401 for at, status in after if at > revoked_at + KEY_CACHE_SECONDS)
        assert sum(status == 401 for _, status in after) > 10
        delays.append(delay)
    figures["nodes: revoked key's last acceptance after revocation"] = (
        f"node a {delays[0]:.2f} s, node b {delays[1]:.2f} s (bound API_KEY_CACHE_SECONDS={KEY_CACHE_SECONDS})"
    )


def test_two_webhook_workers_deliver_every_event_of_both_nodes_once(nodes, figures):
    env = nodes.env
    key = new_api_key(env, "hooks")
    receiver = Receiver()
    workers = []
    try:
        a, b = nodes.servers
        status, endpoint = call(a.base, key, "POST", "/api/v1/webhooks", {"url": receiver.url})
        assert status == 201, endpoint
        receiver.secrets = [endpoint["secret"]]
        for n in range(2):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "deliver_webhooks", "--concurrency", "8"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(nodes.tmp / f"worker-{n}.log").open("wb"),
                    start_new_session=True,
                )
            )
        ids = []
        for n in range(20):
            status, body = call((a, b)[n % 2].base, key, "POST", "/api/v1/threads", {"title": f"t{n}"})
            assert status == 201, body
            ids.append(body["id"])
        for n in range(300):
            server, thread_id = (a, b)[n % 2], ids[n % len(ids)]
            assert (
                call(server.base, key, "PATCH", f"/api/v1/threads/{thread_id}", {"variables": {f"k{n}": str(n)}})[0]
                == 200
            )
        # The feed shows an event once every transaction that began before it has ended (the
        # webhook workers' own transactions included): read on from the cursor until all are there.
        events, cursor = [], ""
        deadline = time.monotonic() + 10
        while len(events) < 320 and time.monotonic() < deadline:
            status, page = call(a.base, key, "GET", f"/api/v1/events?limit=1000{cursor}")
            assert status == 200, page
            events += [event["id"] for event in page["results"]]
            if page["nextCursor"]:
                cursor = f"&after={page['nextCursor']}"
            if not page["hasMore"] and len(events) < 320:
                time.sleep(0.05)
        assert len(events) == len(set(events)) == 320
        receiver.wait_for(len(events), seconds=60)
        delivered = Counter(r.body["data"]["id"] for r in receiver.received)
        assert set(delivered) == set(events)
        assert max(delivered.values()) == 1 and receiver.unverified == []
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        codes = [worker.wait(timeout=20) for worker in workers]
        receiver.close()
    assert codes == [0, 0]
    figures["nodes: two webhook workers"] = f"{len(events)} events from 2 nodes, {delivered.total()} deliveries, 0 lost"


def test_both_nodes_answer_the_same_thread_the_same_way(nodes):
    """One service: what one node writes the other reads at once (no per-node cache of data)."""
    key = new_api_key(nodes.env, "same")
    a, b = nodes.servers
    status, body = call(a.base, key, "POST", "/api/v1/threads", {"title": "one"})
    assert status == 201
    for n in range(10):
        writer, reader = (a, b) if n % 2 else (b, a)
        assert call(writer.base, key, "PATCH", f"/api/v1/threads/{body['id']}", {"variables": {"n": str(n)}})[0] == 200
        status, seen = call(reader.base, key, "GET", f"/api/v1/threads/{body['id']}")
        assert status == 200 and seen["variables"]["n"] == str(n) and seen["version"] == n + 2
    assert json.dumps(call(a.base, key, "GET", f"/api/v1/threads/{body['id']}")[1], sort_keys=True) == json.dumps(
        call(b.base, key, "GET", f"/api/v1/threads/{body['id']}")[1], sort_keys=True
    )
