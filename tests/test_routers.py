"""The read-replica settings and the router's rules that need no standby (tests/test_replicas.py
runs them against a real one): each ``DATABASE_REPLICA_URLS`` entry becomes an alias with the
primary's options; nothing changes without them; the configurations that could read a replica
behind a caller's own write refuse to start; read-your-writes is kept per credential."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from threads.api.authentication import Principal
from threads.services import Actor
from threads_project import routers

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "import json, django; from django.conf import settings; django.setup();"
    "print(json.dumps({'routers': settings.DATABASE_ROUTERS, 'replicas': settings.DATABASE_REPLICAS,"
    " 'databases': settings.DATABASES, 'window': settings.DATABASE_READ_YOUR_WRITES_SECONDS}, default=str))"
)


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "threads_project.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_replica_urls_there_is_no_router_and_no_replica_alias():
    shown = json.loads(settings_with(DATABASE_URL="postgres://threads@db.internal/threads").stdout)
    assert shown["routers"] == [] and shown["replicas"] == [] and list(shown["databases"]) == ["default"]


def test_each_replica_url_becomes_an_alias_with_the_primarys_options_and_a_short_connect_timeout():
    done = settings_with(
        DATABASE_URL="postgres://threads:pw@db.internal:5432/threads",
        DATABASE_REPLICA_URLS="postgres://threads:pw@replica-1:5432/threads, postgres://threads:pw@replica-2:6543/threads"
        "?connect_timeout=7",
        DATABASE_PREPARE_THRESHOLD="",
    )
    shown = json.loads(done.stdout)
    assert shown["routers"] == ["threads_project.routers.ReplicaRouter"]
    assert shown["replicas"] == ["replica_0", "replica_1"]
    primary, first, second = (shown["databases"][alias] for alias in ("default", "replica_0", "replica_1"))
    assert (first["HOST"], second["HOST"], second["PORT"]) == ("replica-1", "replica-2", 6543)
    assert first["ENGINE"] == second["ENGINE"] == primary["ENGINE"] == "threads_project.postgres"
    assert first["OPTIONS"] == {**primary["OPTIONS"], "connect_timeout": 2}
    assert first["OPTIONS"]["prepare_threshold"] is None  # the primary's choice, on the replicas too
    assert int(second["OPTIONS"]["connect_timeout"]) == 7  # the URL's own wins
    assert first["CONN_MAX_AGE"] == primary["CONN_MAX_AGE"] and first["TEST"]["MIRROR"] == "default"
    assert shown["window"] == 10  # the lag bound (5) + 5


def test_replicas_of_sqlite_or_a_window_inside_the_lag_bound_refuse_to_start():
    sqlite = settings_with(DATABASE_URL="sqlite:///x.sqlite3", DATABASE_REPLICA_URLS="postgres://r/threads")
    assert sqlite.returncode != 0 and "DATABASE_REPLICA_URLS needs PostgreSQL in DATABASE_URL" in sqlite.stderr
    tight = settings_with(
        DATABASE_URL="postgres://db/threads",
        DATABASE_REPLICA_URLS="postgres://r/threads",
        DATABASE_REPLICA_MAX_LAG_SECONDS="5",
        DATABASE_READ_YOUR_WRITES_SECONDS="5",
    )
    assert tight.returncode != 0 and "must exceed DATABASE_REPLICA_MAX_LAG_SECONDS" in tight.stderr


def test_read_your_writes_is_kept_per_credential_and_a_user_is_one_caller_by_token_or_session(db):
    user = get_user_model().objects.create_user(username="rita", password="pw-123456")
    key_id, thread_id = uuid.uuid4(), uuid.uuid4()
    by_token = Principal("user", None, True, Actor.user(user), user=user)
    api_key = Principal("api_key", None, True, Actor("api_key", str(key_id), "k"))
    chat = Principal("chat_token", None, True, Actor.chat_token(thread_id), thread_id=thread_id)
    assert routers.caller_of(by_token) == routers.caller_of(user) == f"user:{user.pk}"
    assert routers.caller_of(api_key) == f"api_key:{key_id}" and routers.caller_of(chat) == f"chat_token:{thread_id}"
    assert routers.caller_of(None) is None
    routers.note_write(routers.caller_of(user))
    assert routers.wrote_recently(routers.caller_of(by_token))  # the session's write, seen from the token
    assert not routers.wrote_recently(routers.caller_of(api_key))


def test_without_replicas_the_decorator_and_the_request_hook_do_nothing(rf):
    assert settings.DATABASE_REPLICAS == []
    calls = []
    decorated = routers.replica_reads(lambda request: calls.append(routers._reading.get()) or "done")
    request = rf.patch("/api/v1/threads/x")
    assert decorated(request) == "done" and calls == [None]
    routers.after_request(request)  # no user, no replicas: nothing noted, nothing raised
