"""What a canonical PATCH costs the database (issue 7): at most 4 queries with the API-key lookup,
the history still recorded; and the hand-written thread rendering equals DRF's own."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from threads.api.serializers import ThreadSerializer
from threads.keys import api_key_cache
from threads.models import Event, Thread
from threads.services import message_add, thread_create

from .conftest import ACTOR, url

pytestmark = pytest.mark.django_db


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


def patch_counting(api, thread, body):
    """The statements of one PATCH, less transaction control (each test runs in a transaction, so
    the service's own BEGIN/COMMIT show up as savepoints here)."""
    with CaptureQueriesContext(connection) as queries:
        response = api.patch(url(thread), body)
    assert response.status_code == 200, response.content
    return response, [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]


def test_a_canonical_patch_costs_at_most_four_queries_with_the_key_lookup(api, thread):
    api.get(url(thread))
    api_key_cache.clear()
    response, queries = patch_counting(api, thread, {"metadata": {"a": "2", "b": "new"}})
    assert len(queries) <= 4, queries
    assert sum("threads_apikey" in sql for sql in queries) == 1
    assert response.json()["metadata"] == {"a": "2", "b": "new"} and response["ETag"] == '"2"'
    event = Event.objects.get(thread_id=thread.pk, version=2)
    assert event.changes == {"metadata": {"a": {"from": "1", "to": "2"}, "b": {"from": None, "to": "new"}}}


def test_the_key_lookup_is_cached_between_requests(api, thread):
    api.get(url(thread))  # also the key's once-a-minute ``last_used_at`` write, not part of a PATCH
    _, queries = patch_counting(api, thread, {"metadata": {"a": "3"}})
    assert not any("threads_apikey" in sql for sql in queries)
    assert len(queries) <= 3, queries
    if connection.vendor == "postgresql":  # the one statement that locks, merges, writes and answers
        assert len(queries) == 1, queries


def test_the_thread_is_read_once_and_never_as_a_second_full_select(api, thread):
    api.get(url(thread))
    _, queries = patch_counting(api, thread, {"variables": {"v": "y"}})
    reads = [sql for sql in queries if sql.lstrip().upper().startswith(("SELECT", "WITH")) and "threads_thread" in sql]
    assert len(reads) == 1, reads  # PostgreSQL: the one statement that also writes


def test_a_no_op_patch_writes_nothing(api, thread):
    api.get(url(thread))
    updated_at = thread.updated_at
    _, queries = patch_counting(api, thread, {"metadata": {"a": "1"}})
    assert not any(sql.lstrip().upper().startswith(("UPDATE", "INSERT")) for sql in queries), queries
    thread.refresh_from_db()
    assert thread.version == 1 and thread.updated_at == updated_at
    assert Event.objects.filter(thread_id=thread.pk).count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"title": "Hello", "metadata": {"a": "1", "l": ["x", "y"]}, "variables": {"v": "x"}, "tags": ["one", "two"]},
        {
            "projectId": "p",
            "assistantId": "a",
            "userId": "u",
            "isArchived": True,
            "isPinned": True,
            "visibleInUi": False,
            "isActive": False,
        },
        {},
    ],
)
def test_the_hand_written_thread_rendering_equals_drfs(org, data):
    thread = thread_create(org=org, data=data, actor=ACTOR)
    message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": "hi"}, actor=ACTOR)
    for instance in (thread, Thread.objects.get(pk=thread.pk)):
        serializer = ThreadSerializer(instance)
        drf = serializers.ModelSerializer.to_representation(serializer, instance)
        assert serializer.data == drf
        assert list(serializer.data) == list(drf) == ThreadSerializer.Meta.fields
