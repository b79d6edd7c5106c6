"""The thread list: every filter of the reference, ordering, keyset paging, the limit cap and a
constant query count."""

import base64
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from threads.models import Thread
from threads.services import thread_create, thread_update

from .conftest import ACTOR

pytestmark = pytest.mark.django_db


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def make(org, **data):
    return str(thread_create(org=org, data=data, actor=ACTOR).pk)


@pytest.fixture
def three(org):
    a = make(
        org,
        title="Alpha billing",
        tags=["billing", "vip"],
        metadata={"tier": "gold"},
        projectId="p1",
        assistantId="as1",
        userId="u1",
    )
    b = make(
        org,
        title="Beta",
        tags=["billing"],
        metadata={"tier": "silver"},
        isArchived=True,
        visibleInUi=False,
        projectId="p2",
    )
    c = make(org, title="gamma BILLING", tags=["vip"], isPinned=True, isActive=False, metadata={"tier": ["gold", "x"]})
    return a, b, c


def test_default_order_is_newest_first(api, three):
    assert ids(api.get("/api/v1/threads")) == list(reversed(three))


def test_tag_filters_and_repeated_tags_must_all_match(api, three):
    a, b, c = three
    assert set(ids(api.get("/api/v1/threads", {"tag": "billing"}))) == {a, b}
    assert ids(api.get("/api/v1/threads?tag=billing&tag=VIP")) == [a]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"isArchived": "true"}, "b"),
        ({"isArchived": "false"}, "ac"),
        ({"isArchived": "any"}, "abc"),
        ({"visibleInUi": "false"}, "b"),
        ({"isActive": "false"}, "c"),
        ({"isPinned": "true"}, "c"),
        ({"projectId": "p1"}, "a"),
        ({"assistantId": "as1"}, "a"),
        ({"userId": "u1"}, "a"),
        ({"metadata.tier": "gold"}, "a"),
        ({"metadata.tier": "silver"}, "b"),
        ({"search": "billing"}, "ac"),
        ({"tag": "billing", "isArchived": "false"}, "a"),
    ],
)
def test_each_filter(api, three, params, expected):
    names = dict(zip("abc", three, strict=True))
    assert set(ids(api.get("/api/v1/threads", params))) == {names[x] for x in expected}


def test_repeated_metadata_filters_must_all_match(api, org, three):
    d = make(org, metadata={"tier": "gold", "region": "eu"})
    assert ids(api.get("/api/v1/threads?metadata.tier=gold&metadata.region=eu")) == [d]


def test_date_filters(api, org, three):
    old = Thread.objects.get(pk=three[0])
    Thread.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=10), updated_at=timezone.now() - timedelta(days=10)
    )
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    assert set(ids(api.get("/api/v1/threads", {"createdAfter": cutoff}))) == set(three[1:])
    assert ids(api.get("/api/v1/threads", {"createdBefore": cutoff})) == [three[0]]
    assert set(ids(api.get("/api/v1/threads", {"updatedAfter": cutoff}))) == set(three[1:])


def test_invalid_filter_values_are_400_with_the_param(api, three):
    for params, param in [
        ({"isArchived": "maybe"}, "isArchived"),
        ({"createdAfter": "soon"}, "createdAfter"),
        ({"ordering": "colour"}, "ordering"),
        ({"limit": "many"}, "limit"),
    ]:
        response = api.get("/api/v1/threads", params)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "ordering",
    ["createdAt", "-createdAt", "updatedAt", "-updatedAt", "title", "-title", "lastActivityAt", "-lastActivityAt"],
)
def test_ordering_walks_every_row_once_across_pages(api, org, ordering):
    made = [make(org, title=f"t{i % 3}") for i in range(7)]
    for thread_id in made[:3]:  # some with activity, the rest NULL
        from threads.services import message_add

        message_add(org=org, thread_id=thread_id, data={"role": "user", "content": "x"}, actor=ACTOR)
    seen, link = [], f"/api/v1/threads?limit=2&ordering={ordering}"
    while link:
        body = api.get(link).json()
        seen += [row["id"] for row in body["results"]]
        link = body["next"]
    assert sorted(seen) == sorted(made)
    rows = {str(t.pk): t for t in Thread.objects.all()}
    field = {
        "createdAt": "created_at",
        "updatedAt": "updated_at",
        "title": "title",
        "lastActivityAt": "last_activity_at",
    }[ordering.lstrip("-")]
    values = [getattr(rows[i], field) for i in seen]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=ordering.startswith("-"))
    assert values[len(present) :] == [None] * (len(values) - len(present))  # NULLs last


def test_previous_links_walk_back_to_the_first_page(api, org):
    made = [make(org) for _ in range(5)]
    first = api.get("/api/v1/threads?limit=2").json()
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert back["previous"] is None
    assert len(made) == 5


def test_limit_defaults_to_20_and_is_capped_at_100(api, org):
    Thread.objects.bulk_create([Thread(organization=org, title=f"t{i}") for i in range(105)])
    assert len(ids(api.get("/api/v1/threads"))) == 20
    assert len(ids(api.get("/api/v1/threads", {"limit": 500}))) == 100


@pytest.mark.parametrize(
    "payload",
    [
        {"v": {"t": "yesterday"}, "k": "7d9f3c2e-0000-4000-8000-000000000000"},
        {"v": {"t": "2025-01-01T00:00:00+00:00"}, "k": "not-a-uuid"},
        {"v": {"t": "2025-01-01T00:00:00"}, "k": "7d9f3c2e-0000-4000-8000-000000000000"},  # no time zone
        {"v": None, "k": "7d9f3c2e-0000-4000-8000-000000000000"},  # createdAt is never NULL
        {"v": [1], "k": "7d9f3c2e-0000-4000-8000-000000000000"},
        ["v", "k"],
    ],
)
def test_an_invalid_cursor_is_400(api, three, payload):
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    for cursor in ("not-a-cursor", forged):
        response = api.get("/api/v1/threads", {"cursor": cursor})
        assert response.status_code == 400 and response.json()["error"]["param"] == "cursor"


def test_the_query_count_of_a_page_does_not_grow_with_its_size(api, org):
    Thread.objects.bulk_create([Thread(organization=org, title=f"t{i}", tags=["x"]) for i in range(60)])

    def count(limit):
        with CaptureQueriesContext(connection) as queries:
            assert len(ids(api.get("/api/v1/threads", {"limit": limit, "tag": "x"}))) == limit
        return len(queries)

    count(1)  # the first request looks the key up and stamps its last use
    assert count(2) == count(50) == 1  # the page itself (the key lookup is cached for a few seconds)


def test_a_thread_changed_after_paging_started_is_not_repeated(api, org):
    made = [make(org) for _ in range(4)]
    first = api.get("/api/v1/threads?limit=2&ordering=createdAt").json()
    thread_update(org=org, thread_id=made[0], patch={"title": "touched"}, actor=ACTOR)
    rest = ids(api.get(first["next"]))
    assert rest == made[2:]
