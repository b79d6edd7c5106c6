"""PostgreSQL's PATCH fast path (issue 7): a write based on a read that another writer has since
overtaken is refused whole, and the service then redoes the PATCH under the row lock."""

import pytest
from django.db import connection

from threads import services
from threads.models import Event, Thread
from threads.services import thread_update

from .conftest import ACTOR

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the compare-and-set path is PostgreSQL's"),
]


def test_a_write_based_on_a_stale_read_is_refused_and_records_nothing(org, thread):
    stale = Thread.objects.get(pk=thread.pk)
    thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"a": "2"}}, actor=ACTOR)
    changes = {"metadata": {"a": {"from": "1", "to": "3"}}}
    assert services._write(stale, {"metadata": {"a": "3"}}, ACTOR, changes) is False
    thread.refresh_from_db()
    assert thread.metadata == {"a": "2"} and thread.version == 2
    assert not Event.objects.filter(thread_id=thread.pk, version=3).exists()


def test_after_a_lost_race_the_patch_is_redone_under_the_lock_on_the_current_row(org, thread):
    services._contended(thread.pk, mark=True)  # as after a lost compare-and-set
    updated = thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"b": "x"}}, actor=ACTOR)
    assert updated.metadata == {"a": "1", "b": "x"} and updated.version == 2
    assert Event.objects.get(thread_id=thread.pk, version=2).changes == {"metadata": {"b": {"from": None, "to": "x"}}}
