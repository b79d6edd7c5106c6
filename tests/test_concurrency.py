"""Real concurrent requests against a live server: nothing is lost, If-Match admits one writer,
message counts and history versions stay exact. Runs on SQLite and PostgreSQL alike."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from threads.keys import api_key_create
from threads.models import Event, Message, Organization, Thread
from threads.services import thread_create

from .conftest import ACTOR

pytestmark = pytest.mark.django_db(transaction=True)


def call(base: str, key: str, method: str, path: str, body=None, headers=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def setup(live_server):
    org = Organization.objects.create(slug="race", name="Race")
    _, key = api_key_create(org=org, name="racer")
    thread = thread_create(org=org, data={"metadata": {"seed": "0"}, "tags": ["start"]}, actor=ACTOR)
    return live_server.url, key, thread


def run_at_once(n: int, work):
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def test_concurrent_patches_of_different_keys_and_tags_all_survive(setup):
    base, key, thread = setup
    writers = 12
    path = f"/api/v1/threads/{thread.pk}"
    results = run_at_once(
        writers,
        lambda i: call(
            base,
            key,
            "PATCH",
            path,
            {
                "metadata": {f"m{i}": str(i)},
                "variables": {f"v{i}": str(i)},
                "addTags": [f"t{i}"],
            },
        ),
    )
    assert [status for status, _ in results] == [200] * writers
    thread.refresh_from_db()
    assert thread.metadata == {"seed": "0", **{f"m{i}": str(i) for i in range(writers)}}
    assert thread.variables == {f"v{i}": str(i) for i in range(writers)}
    assert sorted(thread.tags) == sorted(["start", *[f"t{i}" for i in range(writers)]])
    assert thread.version == 1 + writers
    versions = sorted(Event.objects.filter(thread_id=thread.pk).values_list("version", flat=True))
    assert versions == list(range(1, writers + 2))


def test_two_patches_with_the_same_if_match_give_one_200_and_one_412(setup):
    base, key, thread = setup
    path = f"/api/v1/threads/{thread.pk}"
    for round_ in range(3):
        version = Thread.objects.get(pk=thread.pk).version
        results = run_at_once(
            2,
            lambda i, v=version, r=round_: call(
                base, key, "PATCH", path, {"title": f"r{r}-w{i}"}, {"If-Match": f'"{v}"'}
            ),
        )
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 412], results
        assert Thread.objects.get(pk=thread.pk).version == version + 1


def test_sixteen_clients_adding_ten_messages_each_leave_exactly_160(setup):
    base, key, thread = setup
    path = f"/api/v1/threads/{thread.pk}/messages"

    def client(i):
        return [call(base, key, "POST", path, {"role": "user", "content": f"{i}-{j}"})[0] for j in range(10)]

    statuses = [s for batch in run_at_once(16, client) for s in batch]
    assert statuses == [201] * 160
    thread.refresh_from_db()
    assert thread.message_count == 160 == Message.objects.filter(thread=thread).count()
    assert thread.last_activity_at == Message.objects.filter(thread=thread).latest("created_at").created_at
    versions = sorted(Event.objects.filter(thread_id=thread.pk).values_list("version", flat=True))
    assert versions == list(range(1, 162)) and thread.version == 161
