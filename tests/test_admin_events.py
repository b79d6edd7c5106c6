"""The admin's history list (/admin/threads/event/): newest first, one organization read along its
own index whatever else filters the list, all organizations newest first of all."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from threads.models import Event
from threads.services import message_add, message_delete, thread_create, thread_delete, thread_update

from .conftest import ACTOR, make_org, make_user

pytestmark = pytest.mark.django_db
EVENTS = "/admin/threads/event/"
POSTGRES = connection.vendor == "postgresql"


def staff_of(org, username: str) -> Client:
    user = make_user(org, username)
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="view_event"))
    client = Client()
    client.force_login(user)
    return client


def ids(response) -> list[int]:
    return [event.pk for event in response.context["cl"].result_list]


def history(org, title: str, updates: int = 1) -> None:
    thread = thread_create(org=org, actor=ACTOR, data={"title": title})
    for n in range(updates):
        thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"n": str(n)}}, actor=ACTOR)


@pytest.fixture
def two_orgs(org, other_org):
    for n in range(3):  # interleaved: the two organizations' events alternate in id order
        history(org, f"ours {n}")
        history(other_org, f"theirs {n}")
    return org, other_org


def test_a_staff_member_sees_their_organization_s_events_newest_first_filtered_by_action(two_orgs):
    org, _ = two_orgs
    client = staff_of(org, "sam")

    every = client.get(EVENTS)
    updated = client.get(EVENTS, {"action__exact": "updated"})

    ours = list(Event.objects.filter(organization=org).order_by("-id").values_list("pk", flat=True))
    assert ids(every) == ours
    assert ids(updated) == [pk for pk in ours if Event.objects.get(pk=pk).action == "updated"]
    assert len(ids(updated)) == 3


def test_a_superuser_sees_every_organization_s_events_newest_first_of_all(admin_client, two_orgs):
    response = admin_client.get(EVENTS, {"action__exact": "updated"})

    assert ids(response) == list(Event.objects.filter(action="updated").order_by("-id").values_list("pk", flat=True))
    assert {event.organization_id for event in response.context["cl"].result_list} == {o.pk for o in two_orgs}


def test_a_superuser_may_read_one_organization_s_events(admin_client, two_orgs):
    _, theirs = two_orgs

    response = admin_client.get(EVENTS, {"organization": str(theirs.pk), "action__exact": "updated"})

    expected = Event.objects.filter(organization=theirs, action="updated").order_by("-id")
    assert ids(response) == list(expected.values_list("pk", flat=True))
    assert ids(admin_client.get(EVENTS, {"organization": "not-a-uuid"})) == []


def test_a_staff_member_cannot_pick_another_organization(two_orgs):
    org, theirs = two_orgs
    client = staff_of(org, "sam")

    response = client.get(EVENTS, {"organization": str(theirs.pk)})

    assert ids(response) == []


def heap_rows_read() -> int:
    """Rows of threads_event this transaction has read so far, by sequential and index scans."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE relname = 'threads_event'"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's plans")
@pytest.mark.parametrize("plan_cache_mode", ["force_generic_plan", "force_custom_plan"])
def test_filtered_by_action_a_small_organization_s_page_reads_its_own_events_only(plan_cache_mode):
    small, big = make_org("small"), make_org("big")
    history(small, "small", updates=300)  # the oldest events
    with connection.cursor() as cursor:  # then 40,000 newer ones of another organization
        cursor.execute(
            "INSERT INTO threads_event (organization_id, thread_id, action, version, actor_type, actor_id,"
            " actor_name, changes, created_at) SELECT %s, gen_random_uuid(), 'updated', v, 'command', '',"
            " 'tests', '{}', now() FROM generate_series(1, 40000) AS v",
            [big.pk],
        )
        cursor.execute("ANALYZE threads_event")
        # A generic plan is what a statement prepared by psycopg (prepare_threshold) gets from
        # PostgreSQL after five runs: one plan for every organization.
        cursor.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    client = staff_of(small, "sam")

    before = heap_rows_read()
    response = client.get(EVENTS, {"action__exact": "updated"})
    read = heap_rows_read() - before

    assert len(ids(response)) == 50 and response.context["cl"].paginator.row_count.value == 300
    # The count (up to 1,001 rows), the page's ids and its rows: a few hundred of small's own
    # events, not the 40,000 newer ones of big walked along the primary key.
    assert read < 2_000, read


@pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's plans")
@pytest.mark.parametrize("action", ["deleted", "message_deleted"])
def test_filtered_by_a_rare_action_a_large_organization_s_page_reads_only_those_events(action):
    big = make_org("big")
    history(big, "to delete", updates=2)
    doomed = Event.objects.filter(organization=big).first().thread_id
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO threads_event (organization_id, thread_id, action, version, actor_type, actor_id,"
            " actor_name, changes, created_at) SELECT %s, gen_random_uuid(), 'updated', 1, 'command', '',"
            " 'tests', '{}', now() FROM generate_series(1, 40000)",
            [big.pk],
        )
    if action == "deleted":
        thread_delete(org=big, thread_id=doomed, actor=ACTOR)
    else:
        message = message_add(org=big, thread_id=doomed, actor=ACTOR, data={"role": "user", "content": "oops"})
        message_delete(org=big, thread_id=doomed, message_id=message.pk, actor=ACTOR)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE threads_event")
    client = staff_of(big, "bea")

    before = heap_rows_read()
    response = client.get(EVENTS, {"action__exact": action})
    read = heap_rows_read() - before

    assert [e.action for e in response.context["cl"].result_list] == [action]
    assert read < 100, read  # the partial index of deletions, not 40,000 events read and dropped


@pytest.mark.parametrize("query", [{}, {"action__exact": "updated"}, {"action__exact": "updated", "q": "tests"}])
def test_each_row_links_to_its_own_event_with_the_list_s_filters_as_django_makes_the_link(two_orgs, query):
    # The changelist makes the row link once a page (threads.admin.IndexedChangeList); it must be
    # the link Django's own rendering makes for each row: reversed, the filters merged in.
    from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
    from django.contrib.admin.views.main import ChangeList

    org, _ = two_orgs
    response = staff_of(org, "sam").get(EVENTS, query)
    cl = response.context["cl"]

    assert cl.result_list
    for event in cl.result_list:
        django_s = ChangeList.url_for_result(cl, event)
        expected = add_preserved_filters({"preserved_filters": cl.row_filters, "opts": cl.opts}, django_s)
        assert f'href="{expected.replace("&", "&amp;")}"' in response.text
        assert f"/admin/threads/event/{event.pk}/change/" in expected
        if query:
            assert "_changelist_filters=" in expected and "action__exact%3Dupdated" in expected
        else:
            assert "?" not in expected
