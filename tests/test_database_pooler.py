"""``DATABASE_POOLER``: the setting refuses what it does not know, turns off what a
transaction-mode pooler breaks, and a prepared statement error (a pooler the service was not told
of) is the 503 ``database_misconfigured`` at every door, with one log line naming the setting.
The pooler itself is in tests/test_pooler.py (PgBouncer, started by the tests)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test import RequestFactory

from threads.api.exceptions import handler500, to_thread_error

from .conftest import url

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgres://nobody@127.0.0.1:1/never"  # settings only: nothing connects

SETTINGS = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"pooler": settings.DATABASE_POOLER, "prepare": db["OPTIONS"].get("prepare_threshold"),
                  "binding": db["OPTIONS"].get("server_side_binding"),
                  "cursors": db.get("DISABLE_SERVER_SIDE_CURSORS", False)}))
"""


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETTINGS],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_transaction_pooler_setting_turns_prepares_and_held_cursors_off_whatever_the_threshold():
    done = settings_with(DATABASE_URL=PG_URL, DATABASE_POOLER="Transaction", DATABASE_PREPARE_THRESHOLD="3")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "pooler": "transaction",
        "prepare": None,
        "binding": True,
        "cursors": True,
    }


@pytest.mark.parametrize("value", ["", "none", " None "])
def test_without_a_pooler_the_threshold_stands(value):
    done = settings_with(DATABASE_URL=PG_URL, DATABASE_POOLER=value, DATABASE_PREPARE_THRESHOLD="3")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "pooler": "none",
        "prepare": 3,
        "binding": True,
        "cursors": False,
    }


@pytest.mark.parametrize("value", ["session", "statement", "pgbouncer", "1"])
def test_any_other_pooler_value_stops_the_service_at_start_up_with_one_clear_line(value):
    done = settings_with(DATABASE_POOLER=value)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_POOLER must be empty, 'none' or 'transaction' "
        f"(PgBouncer's pool_mode = transaction), not {value!r}; a session-mode pooler needs no setting."
    )


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")


def database_error(*statements: str) -> DatabaseError:
    """The error PostgreSQL really raises for the last of ``statements``, as Django hands it over
    (in a savepoint, so that the test's transaction goes on)."""
    with pytest.raises(DatabaseError) as raised, transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return raised.value


@postgres_only
@pytest.mark.django_db
@pytest.mark.parametrize(
    "statements, sqlstate",
    [
        (["EXECUTE statement_of_another_server_connection"], "26000"),
        (["PREPARE twice AS SELECT 1", "PREPARE twice AS SELECT 2"], "42P05"),
    ],
)
def test_a_prepared_statement_error_is_the_503_naming_the_setting_and_one_log_line(statements, sqlstate, caplog):
    error = database_error(*statements)
    assert error.__cause__.sqlstate == sqlstate
    with caplog.at_level(logging.ERROR, logger="threads.api"):
        answer = to_thread_error(error)
    assert (answer.status, answer.code) == (503, "database_misconfigured")
    assert "DATABASE_POOLER=transaction" in answer.message
    [record] = caplog.records
    assert record.getMessage() == (
        f"prepared statement error (SQLSTATE {sqlstate}): the database is behind a transaction-mode pooler; "
        "set DATABASE_POOLER=transaction (docs/deploy.md)"
    )
    assert record.exc_info is None  # one line, no traceback
    with connection.cursor() as cursor:  # prepared statements outlive the test's transaction
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name = 'twice'")
        if cursor.fetchone():
            cursor.execute("DEALLOCATE twice")


@postgres_only
@pytest.mark.django_db
def test_outside_a_views_handler_too_the_prepared_statement_error_is_the_503():
    """An operator page or the admin: Django's handler500 runs inside the exception's handling."""
    error = database_error("EXECUTE statement_of_another_server_connection")
    try:
        raise error
    except DatabaseError:
        response = handler500(RequestFactory().get("/ops/threads/"))
    assert response.status_code == 503
    assert json.loads(response.content)["error"]["code"] == "database_misconfigured"


@pytest.mark.django_db
def test_any_other_database_error_stays_the_bare_500():
    from threads.models import Organization

    Organization.objects.create(slug="twice", name="Twice")
    with pytest.raises(DatabaseError) as raised, transaction.atomic():
        Organization.objects.create(slug="twice", name="Twice")  # a unique slug: an IntegrityError
    assert to_thread_error(raised.value).code == "internal_error"
    try:
        raise raised.value
    except DatabaseError:
        response = handler500(RequestFactory().get("/ops/threads/"))
    assert (response.status_code, json.loads(response.content)["error"]["code"]) == (500, "internal_error")


@postgres_only
@pytest.mark.django_db
def test_each_connection_names_its_prepared_statements_apart(api, thread):
    """psycopg's own names (_pg3_0, _pg3_1, …) are the same on every connection: behind a pooler one
    client's statement could run another's SQL. Here each connection's names start at random."""
    for n in range(8):
        assert api.patch(url(thread), {"metadata": {"n": str(n)}}).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        names = [row[0] for row in cursor.fetchall()]
    assert names and all(name.startswith("_pg3_") and int(name[5:]) > 2**20 for name in names), names
    other = connections.create_connection("default")
    try:
        other.ensure_connection()
        ours, theirs = connection.connection._prepared._prepared_idx, other.connection._prepared._prepared_idx
        assert abs(ours - theirs) > 2**20
    finally:
        other.close()
