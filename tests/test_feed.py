"""The change feed, GET /api/v1/events: exactly once and in version order while writers commit,
tenancy, credentials, cursors and filters. Runs on SQLite and PostgreSQL."""

import random
import threading
import time

import psycopg
import pytest
from django.db import connection, transaction

from threads import feed
from threads.models import Event, Organization
from threads.services import thread_create, thread_delete, thread_update

from .conftest import ACTOR, Api, url

postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's transactions")
# The feed shows committed events only: each test commits its writes as a client's would.
pytestmark = pytest.mark.django_db(transaction=True)


def call(client: Api, path: str, params=None) -> tuple[int, dict]:
    response = client.get(path, params)
    return response.status_code, response.json()


def drain(api: Api, cursor: str | None = None, **params) -> tuple[list[dict], str]:
    """Every event the feed has now, page after page; and the cursor to go on from."""
    seen = []
    while True:
        status, body = call(api, "/api/v1/events", {**params, **({"after": cursor} if cursor else {})})
        assert status == 200, body
        seen += body["results"]
        cursor = body["nextCursor"]
        if not body["hasMore"]:
            return seen, cursor


def test_the_feed_gives_every_event_of_the_organization_oldest_first_with_its_thread(api, org, other_org):
    first = thread_create(org=org, data={"title": "one"}, actor=ACTOR)
    thread_update(org=org, thread_id=first.pk, patch={"metadata": {"a": "1"}}, actor=ACTOR)
    second = thread_create(org=org, data={}, actor=ACTOR)
    thread_delete(org=org, thread_id=second.pk, actor=ACTOR)
    thread_create(org=other_org, data={"title": "theirs"}, actor=ACTOR)

    events, _ = drain(api)

    assert [(e["threadId"], e["action"], e["version"]) for e in events] == [
        (str(first.pk), "created", 1),
        (str(first.pk), "updated", 2),
        (str(second.pk), "created", 1),
        (str(second.pk), "deleted", 2),
    ]
    update = events[1]
    assert set(update) == {"id", "threadId", "createdAt", "action", "version", "actor", "changes"}
    assert update["changes"] == {"metadata": {"a": {"from": None, "to": "1"}}}
    assert update["actor"] == {"type": ACTOR.type, "id": ACTOR.id, "name": ACTOR.name}
    assert update["createdAt"].endswith("Z")
    # The same event in the thread's own history.
    status, history = call(api, url(first, "/history"))
    assert history["results"][0] == {k: v for k, v in update.items() if k != "threadId"}


def test_pages_resume_from_the_cursor_and_an_exhausted_cursor_waits_for_new_events(api, org):
    thread = thread_create(org=org, data={}, actor=ACTOR)
    for i in range(6):
        thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"n": str(i)}}, actor=ACTOR)

    status, page = call(api, "/api/v1/events", {"limit": "3"})
    assert status == 200 and page["hasMore"] is True
    assert [e["version"] for e in page["results"]] == [1, 2, 3]
    rest, cursor = drain(api, page["nextCursor"], limit="3")
    assert [e["version"] for e in rest] == [4, 5, 6, 7]

    status, empty = call(api, "/api/v1/events", {"after": cursor})
    assert (status, empty["results"], empty["hasMore"]) == (200, [], False)
    thread_update(org=org, thread_id=thread.pk, patch={"title": "later"}, actor=ACTOR)
    status, later = call(api, "/api/v1/events", {"after": empty["nextCursor"]})
    assert [e["version"] for e in later["results"]] == [8]


def test_filters_by_thread_and_by_action_and_the_filtered_cursor_moves_on(api, org):
    one = thread_create(org=org, data={}, actor=ACTOR)
    two = thread_create(org=org, data={}, actor=ACTOR)
    thread_update(org=org, thread_id=one.pk, patch={"title": "x"}, actor=ACTOR)
    thread_update(org=org, thread_id=two.pk, patch={"title": "y"}, actor=ACTOR)

    events, _ = drain(api, threadId=str(two.pk))
    assert [(e["threadId"], e["version"]) for e in events] == [(str(two.pk), 1), (str(two.pk), 2)]
    status, body = call(api, "/api/v1/events", {"action": ["created", "deleted"]})
    assert [(e["threadId"], e["action"]) for e in body["results"]] == [
        (str(one.pk), "created"),
        (str(two.pk), "created"),
    ]

    # A reader of one action is not handed the same unmatched events again on its next poll.
    cursor = body["nextCursor"]
    thread_delete(org=org, thread_id=one.pk, actor=ACTOR)
    status, body = call(api, "/api/v1/events", {"action": "deleted", "after": cursor})
    assert [(e["threadId"], e["action"]) for e in body["results"]] == [(str(one.pk), "deleted")]


@pytest.mark.parametrize(
    "params, param",
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "MTIz"}, "after"),  # "123": no separator
        ({"after": "LTEuNQ"}, "after"),  # "-1.5"
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"threadId": "nope"}, "threadId"),
        ({"action": "archived"}, "action"),
    ],
)
def test_bad_parameters_are_a_400_with_the_parameter_named(api, params, param):
    status, body = call(api, "/api/v1/events", params)
    assert status == 400
    assert body["error"]["code"] == "invalid_parameters" and body["error"]["param"] == param


def test_a_limit_above_the_maximum_is_the_maximum(api, org):
    status, body = call(api, "/api/v1/events", {"limit": "5000"})
    assert status == 200 and body["results"] == []


def test_every_reading_credential_may_read_the_feed_and_a_chat_token_may_not(
    org, reader, viewer_api, member_api, thread
):
    for client in (reader, viewer_api, member_api):
        status, body = call(client, "/api/v1/events")
        assert status == 200 and [e["threadId"] for e in body["results"]] == [str(thread.pk)]
    minted = member_api.post(url(thread, "/chat-token"), {}).json()
    status, body = call(Api(minted["token"]), "/api/v1/events")
    assert status == 403 and body["error"]["code"] == "permission_denied"
    status, body = call(Api(), "/api/v1/events")
    assert status == 401


def test_another_organization_sees_none_of_our_events_even_with_our_cursor(api, outsider, org):
    thread = thread_create(org=org, data={}, actor=ACTOR)
    _, ours = call(api, "/api/v1/events")
    assert len(ours["results"]) == 1
    status, theirs = call(outsider, "/api/v1/events")
    assert (status, theirs["results"]) == (200, [])
    status, theirs = call(outsider, "/api/v1/events", {"threadId": str(thread.pk)})
    assert (status, theirs["results"]) == (200, [])


# --- Concurrency: what commits late is not skipped ------------------------------------------------


def test_a_poller_sees_every_event_of_sixteen_concurrent_writers_exactly_once_in_version_order():
    org = Organization.objects.create(slug="feed-race", name="Feed race")
    threads = [thread_create(org=org, data={}, actor=ACTOR) for _ in range(4)]
    writers, writes_each = 16, 12
    stop = threading.Event()
    seen: list[Event] = []

    def write(i: int) -> None:
        rng = random.Random(i)
        try:
            for n in range(writes_each):
                thread = rng.choice(threads)
                # Transactions of different lengths, so that ids commit out of order.
                with transaction.atomic():
                    thread_update(org=org, thread_id=thread.pk, patch={"metadata": {f"w{i}": str(n)}}, actor=ACTOR)
                    time.sleep(rng.random() * 0.02)
        finally:
            connection.close()

    def poll() -> None:
        position = None
        try:
            while True:
                done = stop.is_set()  # read before the poll: the last poll starts after every commit
                events, position, more = feed.read(org.pk, position, 7)
                seen.extend(events)
                if done and not more:
                    return
                time.sleep(0.003)
        finally:
            connection.close()

    poller = threading.Thread(target=poll)
    poller.start()
    pool = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stop.set()
    poller.join(timeout=120)

    stored = list(Event.objects.filter(organization=org).order_by("id"))
    assert len(stored) == 4 + writers * writes_each
    assert sorted(e.id for e in seen) == [e.id for e in stored]  # every event, exactly once
    for thread in threads:
        versions = [e.version for e in seen if e.thread_id == thread.pk]
        assert versions == sorted(versions) == list(range(1, len(versions) + 1))


@postgres_only
def test_an_event_that_commits_late_is_held_back_until_it_commits_then_delivered_in_order():
    org = Organization.objects.create(slug="feed-late", name="Feed late")
    early, other = (thread_create(org=org, data={}, actor=ACTOR) for _ in range(2))
    _, start, _ = feed.read(org.pk, None, 100)
    started, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                thread_update(org=org, thread_id=early.pk, patch={"title": "slow"}, actor=ACTOR)
                started.set()
                release.wait(30)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_writer)
    slow.start()
    assert started.wait(30)
    thread_update(org=org, thread_id=other.pk, patch={"title": "fast"}, actor=ACTOR)  # a higher id, committed first

    held, position, _ = feed.read(org.pk, start, 100)
    assert held == []  # the fast event waits behind the open transaction that began before it
    release.set()
    slow.join(30)
    events, _, _ = feed.read(org.pk, position, 100)
    assert [(e.thread_id, e.version) for e in events] == [(early.pk, 2), (other.pk, 2)]


@postgres_only
def test_a_transaction_open_in_another_database_does_not_hold_the_feed_back():
    org = Organization.objects.create(slug="feed-other", name="Feed other")
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    with psycopg.connect(**params) as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")  # an open transaction holding an xid
        thread = thread_create(org=org, data={}, actor=ACTOR)
        events, _, _ = feed.read(org.pk, None, 100)
        assert [e.thread_id for e in events] == [thread.pk]
        elsewhere.rollback()


@postgres_only
def test_a_thread_written_by_an_older_transaction_keeps_its_version_order():
    """A transaction that began first (lower xid) writes a thread's next version after a younger
    one: its event is stamped no lower than the version before it."""
    org = Organization.objects.create(slug="feed-order", name="Feed order")
    thread = thread_create(org=org, data={}, actor=ACTOR)
    began, go = threading.Event(), threading.Event()

    def older() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_current_xact_id()")  # takes its xid now
                began.set()
                go.wait(30)
                thread_update(org=org, thread_id=thread.pk, patch={"title": "older"}, actor=ACTOR)
        finally:
            connection.close()

    worker = threading.Thread(target=older)
    worker.start()
    assert began.wait(30)
    thread_update(org=org, thread_id=thread.pk, patch={"title": "younger"}, actor=ACTOR)
    go.set()
    worker.join(30)

    events, _, _ = feed.read(org.pk, None, 100)
    assert [e.version for e in events] == [1, 2, 3]
    assert events[1].txid <= events[2].txid


def test_head_is_past_every_committed_event_so_only_later_ones_follow_it(org):
    thread_create(org=org, data={}, actor=ACTOR)
    mark = feed.head()
    assert feed.read(org.pk, mark, 100)[0] == []
    later = thread_create(org=org, data={}, actor=ACTOR)
    assert [e.thread_id for e in feed.read(org.pk, mark, 100)[0]] == [later.pk]


def test_cursors_round_trip():
    for position in (feed.START, feed.Position(12, 34), feed.Position(feed.MAX_ID, feed.MAX_ID)):
        assert feed.decode(feed.encode(position)) == position
