"""The PostgreSQL backend (threads_project/postgres): a PATCH runs prepared statements with
server-side parameters, and a connection that the server closed is noticed before the next
request without a round trip, and replaced."""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.db import connection

from .conftest import url

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_patch_runs_prepared_statements(api, thread):
    for n in range(8):
        assert api.patch(url(thread), {"metadata": {"n": str(n)}}).status_code == 200
    with connection.cursor() as cursor:  # the same connection: prepared statements are per session
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    # The PATCH's write, its parameters bound by the server ($1, …), prepared once and then reused.
    writes = [sql for sql in prepared if "UPDATE" in sql and "threads_thread" in sql.replace('"', "")]
    assert writes and all("$1" in sql for sql in writes), prepared


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_next_request(api, thread):
    assert api.get(url(thread)).status_code == 200
    old = backend_pid()
    assert connection.is_usable()
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")}) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [old])  # waits until it has exited
    assert not connection.is_usable()  # seen on the socket: no query was sent
    connection.close_if_unusable_or_obsolete()  # what Django does at each request's start
    assert api.get(url(thread)).status_code == 200
    assert backend_pid() != old


@pytest.mark.django_db
def test_seed_demo_seeds_ten_thousand_threads_and_an_export_of_five_thousand_imports(tmp_path):
    """Bulk writes are cut by parameter count: 5,000 rows of 20 columns in one INSERT are more
    than the 65,535 parameters a statement may bind server-side."""
    from django.core.management import call_command

    from threads.models import Event, Message, Organization, Thread

    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("seed_demo", "--org", "demo", "--threads", "10000", **quiet)
    demo = Organization.objects.get(slug="demo")
    messages = Message.objects.filter(thread__organization=demo).count()
    assert Thread.objects.filter(organization=demo).count() == 10_000
    assert Event.objects.filter(organization=demo).count() == 10_000 + messages

    exported = tmp_path / "demo.jsonl"
    call_command("export_threads", "--org", "demo", "--output", str(exported), **quiet)
    half = exported.read_text(encoding="utf-8").splitlines(keepends=True)[:5000]
    (tmp_path / "half.jsonl").write_text("".join(half), encoding="utf-8")
    call_command("create_org", "copy", **quiet)
    out = io.StringIO()
    call_command(
        "import_threads", str(tmp_path / "half.jsonl"), "--org", "copy", "--new-ids", stdout=out, stderr=io.StringIO()
    )

    assert out.getvalue().strip() == "imported 5000, updated 0, unchanged 0, skipped 0"
    copied = sum(json.loads(line)["messageCount"] for line in half)
    assert Message.objects.filter(thread__organization__slug="copy").count() == copied


def event_seq_scans() -> int:
    """Sequential scans of the event table in this transaction (the test's), by any statement."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'threads_event'")
        row = cursor.fetchone()
    return row[0] if row else 0


@pytest.mark.django_db
def test_writing_events_never_scans_the_whole_event_table(api, thread):
    """Each event's trigger looks up the thread's previous event. Planned while the table is small,
    as on a new deployment, that lookup was a sequential scan, kept by the connection's plan: every
    later PATCH then read every event ever written (a PATCH got slower with each one)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE threads_event")  # statistics of a near-empty table, as after a deployment
    before = event_seq_scans()
    for n in range(12):  # past the five runs after which PostgreSQL settles on one plan
        assert api.patch(url(thread), {"metadata": {"n": str(n)}}).status_code == 200
    assert api.post(url(thread, "/messages"), {"role": "user", "content": "hi"}).status_code == 201
    assert event_seq_scans() == before


@pytest.mark.django_db(transaction=True)
def test_a_patch_takes_no_lock_on_its_organizations_row(api, org, thread):
    """Every writer of an organization shares its one row: a history event that checked a foreign
    key to it locked it (FOR KEY SHARE) at each commit. A PATCH goes through while another session
    holds the row (an operator renaming the organization)."""
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")}) as other:
        other.execute("SELECT 1 FROM threads_organization WHERE id = %s FOR UPDATE", [org.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            response = api.patch(url(thread), {"metadata": {"b": "2"}})
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        other.rollback()
    assert response.status_code == 200, response.content
