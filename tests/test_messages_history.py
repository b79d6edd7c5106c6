"""Messages and the change history (issue: messages, history and chat tokens)."""

import pytest

from threads.models import Event, Message
from threads.services import Actor, message_add, thread_update

from .conftest import ACTOR, url

pytestmark = pytest.mark.django_db


def history(api, thread, **params):
    response = api.get(url(thread, "/history"), params)
    assert response.status_code == 200, response.content
    return response.json()


def test_adding_a_message_returns_201_and_raises_the_count(api, thread):
    response = api.post(url(thread, "/messages"), {"role": "assistant", "content": "Hi!", "metadata": {"k": "v"}})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "object", "threadId", "role", "content", "metadata", "createdAt"}
    assert (body["object"], body["threadId"], body["role"], body["content"]) == (
        "thread.message",
        str(thread.pk),
        "assistant",
        "Hi!",
    )
    thread.refresh_from_db()
    assert thread.message_count == 1
    assert thread.last_activity_at.isoformat().replace("+00:00", "Z") == body["createdAt"]
    assert thread.version == 2


@pytest.mark.parametrize(
    "body, param",
    [
        ({"role": "robot", "content": "x"}, "role"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": "x" * 100_001}, "content"),
        ({"role": "user", "content": "x", "extra": 1}, "extra"),
        ({"role": "user", "content": "a\u0000"}, "content"),
    ],
)
def test_invalid_messages_are_400_and_add_nothing(api, thread, body, param):
    response = api.post(url(thread, "/messages"), body)
    assert response.status_code == 400
    assert response.json()["error"] == {**response.json()["error"], "code": "invalid_parameters", "param": param}
    thread.refresh_from_db()
    assert thread.message_count == 0 and not Message.objects.exists()


def test_message_metadata_has_the_thread_limits(api, thread):
    body = {"role": "user", "content": "x", "metadata": {f"k{i}": "v" for i in range(17)}}
    assert api.post(url(thread, "/messages"), body).status_code == 422


def test_messages_are_listed_oldest_first_with_cursor_paging(api, org, thread):
    for i in range(5):
        message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": str(i)}, actor=ACTOR)
    first = api.get(url(thread, "/messages"), {"limit": 3}).json()
    assert [m["content"] for m in first["results"]] == ["0", "1", "2"]
    second = api.get(first["next"]).json()
    assert [m["content"] for m in second["results"]] == ["3", "4"] and second["next"] is None


def test_deleting_a_thread_removes_its_messages_but_keeps_its_events(api, org, thread):
    message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": "x"}, actor=ACTOR)
    assert api.delete(url(thread)).status_code == 204
    assert not Message.objects.exists()
    events = list(Event.objects.filter(thread_id=thread.pk).order_by("version"))
    assert [e.action for e in events] == ["created", "message_added", "deleted"]
    assert [e.version for e in events] == [1, 2, 3]
    assert api.get(url(thread, "/history")).status_code == 404


def test_history_is_newest_first_and_names_the_actor(api, member_api, org, thread):
    api.patch(url(thread, ""), {"title": "by key"})
    member_api.patch(url(thread, ""), {"title": "by user"})
    results = history(api, thread)["results"]
    assert [e["action"] for e in results] == ["updated", "updated", "created"]
    assert [e["version"] for e in results] == [3, 2, 1]
    assert results[0]["actor"] == {"type": "user", "id": str(results[0]["actor"]["id"]), "name": "mia"}
    assert results[1]["actor"]["type"] == "api_key" and results[1]["actor"]["name"] == "writer"
    assert results[2]["actor"] == {"type": "command", "id": "tests", "name": "tests"}
    assert set(results[0]) == {"id", "createdAt", "action", "version", "actor", "changes"}


def test_history_pages_with_a_cursor(api, org, thread):
    for i in range(4):
        thread_update(org=org, thread_id=thread.pk, patch={"title": f"t{i}"}, actor=ACTOR)
    page = history(api, thread, limit=2)
    assert [e["version"] for e in page["results"]] == [5, 4]
    assert [e["version"] for e in api.get(page["next"]).json()["results"]] == [3, 2]


def test_the_diff_format_of_each_field_kind(api, thread):
    api.patch(
        url(thread),
        {
            "metadata": {"a": None, "b": ["x", "y"]},
            "variables": {"v": "changed"},
            "title": "T",
            "tags": ["two"],
            "isPinned": True,
            "projectId": "p",
        },
    )
    changes = history(api, thread)["results"][0]["changes"]
    assert changes == {
        "metadata": {"a": {"from": "1", "to": None}, "b": {"from": None, "to": ["x", "y"]}},
        "variables": {"v": {"from": "x", "to": "changed"}},
        "title": {"from": "Hello", "to": "T"},
        "tags": {"from": ["one"], "to": ["two"]},
        "isPinned": {"from": False, "to": True},
        "projectId": {"from": None, "to": "p"},
    }


def test_created_and_message_events_carry_their_changes(api, thread):
    api.post(url(thread, "/messages"), {"role": "user", "content": "x"})
    added, created = history(api, thread)["results"]
    assert added["action"] == "message_added"
    assert added["changes"]["messageCount"] == {"from": 0, "to": 1}
    assert added["changes"]["lastActivityAt"]["from"] is None
    assert created["changes"]["title"] == {"from": "", "to": "Hello"}
    assert created["changes"]["metadata"] == {"a": {"from": None, "to": "1"}}


def test_a_no_op_writes_no_event(api, thread):
    api.patch(url(thread), {"metadata": {"a": "1"}, "removeTags": ["absent"]})
    assert [e["version"] for e in history(api, thread)["results"]] == [1]


def test_every_write_path_records_exactly_one_event(org, thread):
    thread_update(org=org, thread_id=thread.pk, patch={"isArchived": True}, actor=Actor.command("x"))
    message_add(org=org, thread_id=thread.pk, data={"role": "tool", "content": "{}"}, actor=ACTOR)
    assert list(Event.objects.filter(thread_id=thread.pk).order_by("version").values_list("action", "version")) == [
        ("created", 1),
        ("updated", 2),
        ("message_added", 3),
    ]
