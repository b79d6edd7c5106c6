"""PostgreSQL renders the list's rows itself (THREAD_JSON_SQL): the same JSON as ThreadSerializer,
for any thread, and the same page as the Python path; and the list query is never a prepared
statement, whatever the connection's ``prepare_threshold``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threads import merge
from threads.api.serializers import ThreadSerializer
from threads.api.views import THREAD_JSON
from threads.models import Thread
from threads.services import thread_create

from .conftest import ACTOR

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite renders rows in Python"),
]

TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
LINE_SEPARATORS = st.sampled_from(["\u2028", "\u2029", "\n", '"', "\\", "\x7f", "é", "😀"])
STRING = st.text(st.one_of(TEXT, LINE_SEPARATORS), max_size=40)
KEY = st.text(TEXT, min_size=1, max_size=20)
TAG = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))])
TIME = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES)
# A whole second is written without a fraction: make it common rather than one case in a million.
TIMES = st.one_of(TIME, TIME.map(lambda value: value.replace(microsecond=0)))
THREAD = st.fixed_dictionaries(
    {},
    optional={
        "title": STRING,
        "metadata": st.dictionaries(
            KEY, st.one_of(STRING, st.lists(STRING, max_size=3)), max_size=merge.METADATA_KEYS_MAX
        ),
        "variables": st.dictionaries(KEY, STRING, max_size=5),
        "tags": st.lists(TAG, max_size=4),
        "isArchived": st.booleans(),
        "isActive": st.booleans(),
        "visibleInUi": st.booleans(),
        "isPinned": st.booleans(),
        "projectId": st.one_of(st.none(), STRING),
        "assistantId": st.one_of(st.none(), STRING),
        "userId": st.one_of(st.none(), STRING),
    },
)


def sql_rendering(thread: Thread) -> str:
    return Thread.objects.filter(pk=thread.pk).values_list(THREAD_JSON, flat=True).get()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=THREAD, times=st.tuples(TIMES, TIMES, st.one_of(st.none(), TIMES)), messages=st.integers(0, 10**6))
def test_sql_renders_any_thread_as_the_serializer_does(org, data, times, messages):
    thread = thread_create(org=org, data=data, actor=ACTOR)
    created, updated, activity = times
    Thread.objects.filter(pk=thread.pk).update(
        created_at=created, updated_at=updated, last_activity_at=activity, message_count=messages
    )
    thread.refresh_from_db()
    python = ThreadSerializer(thread).data
    rendered = json.loads(sql_rendering(thread))
    # Equal as JSON, with every key (nested ones too) in the same order.
    assert json.dumps(rendered) == json.dumps(python)
    assert list(rendered) == ThreadSerializer.Meta.fields


def test_the_page_is_the_python_pages_json_and_escapes_line_separators_as_drf(api, org):
    made = [
        thread_create(org=org, data={"title": f"line\u2028{n}\u2029", "metadata": {"n": str(n)}}, actor=ACTOR)
        for n in range(5)
    ]
    newest_first = sorted(made, key=lambda t: (t.created_at, t.pk), reverse=True)
    response = api.get("/api/v1/threads", {"limit": 2})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "\u2028" not in response.content.decode() and "\\u2028" in response.content.decode()
    seen, page = [], response.json()
    assert list(page) == ["next", "previous", "results"] and page["previous"] is None
    while True:
        seen += page["results"]
        if page["next"] is None:
            break
        page = api.get(page["next"]).json()
    expected = [ThreadSerializer(Thread.objects.get(pk=t.pk)).data for t in newest_first]
    assert json.dumps(seen) == json.dumps(expected)
    back = api.get(page["previous"]).json()  # the last page's previous link goes back one page
    assert [row["id"] for row in back["results"]] == [str(t.pk) for t in newest_first[2:4]]


@pytest.fixture
def prepare_everything(db):
    """The connection as with server-side binding and ``prepare_threshold=0``: every query is
    prepared on its first run unless it says otherwise."""
    connection.ensure_connection()
    raw = connection.connection
    saved = raw.cursor_factory, raw.prepare_threshold
    raw.cursor_factory, raw.prepare_threshold = ServerBindingCursor, 0
    yield
    raw.cursor_factory, raw.prepare_threshold = saved
    raw.execute("DEALLOCATE ALL")


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_list_query_is_never_a_prepared_statement(api, org, prepare_everything):
    thread_create(org=org, data={"metadata": {"bucket": "7"}}, actor=ACTOR)
    for _ in range(3):
        response = api.get("/api/v1/threads", {"metadata.bucket": "7"})
        assert response.status_code == 200 and len(response.json()["results"]) == 1
    statements = prepared_statements()
    assert any("threads_thread" in sql for sql in statements)  # the thread's own reads are prepared
    assert not [sql for sql in statements if "json_build_object" in sql]
