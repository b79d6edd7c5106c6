"""Seed 003 (Langbase threads): /v1/threads, and the real ``langbase`` SDK against it."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from langbase import Langbase
from langbase.errors import BadRequestError, NotFoundError

from threads.models import Thread
from threads.services import thread_create

from .compat_support import canonical, chat_api, last_event
from .conftest import ACTOR, Api, url

pytestmark = pytest.mark.django_db

THREADS = "/v1/threads"


def path(thread_or_id, suffix: str = "") -> str:
    return f"{THREADS}/{getattr(thread_or_id, 'pk', thread_or_id)}{suffix}"


def envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    return body["error"]


def test_the_documented_update_merges_metadata_and_answers_the_documented_shape(api, org):
    thread = thread_create(org=org, actor=ACTOR, data={"metadata": {"userId": "user123", "topic": "support"}})

    response = api.post(path(thread), {"metadata": {"status": "resolved", "priority": "high"}})

    assert response.status_code == 200
    assert response.json() == {
        "id": str(thread.pk),
        "object": "thread",
        "created_at": int(thread.created_at.timestamp()),
        "metadata": {
            "userId": "user123",
            "topic": "support",
            "status": "resolved",
            "priority": "high",
        },
    }
    thread.refresh_from_db()
    assert thread.metadata["status"] == "resolved"


def test_an_update_shows_in_the_canonical_api_and_history_as_the_api_key(api, thread):
    api.post(path(thread), {"metadata": {"a": None, "status": "resolved"}})

    assert canonical(api, thread.pk)["metadata"] == {"status": "resolved"}
    event = last_event(api, thread.pk)
    assert event["actor"]["type"] == "api_key"
    assert event["changes"]["metadata"] == {
        "a": {"from": "1", "to": None},
        "status": {"from": None, "to": "resolved"},
    }


def test_create_takes_an_id_metadata_and_first_messages(api):
    thread_id = str(uuid.uuid4())

    response = api.post(
        THREADS,
        {
            "threadId": thread_id,
            "metadata": {"topic": "support"},
            "messages": [{"role": "user", "content": "Hi", "metadata": {"lang": "en"}}],
        },
    )

    assert response.status_code == 200
    assert response.json()["id"] == thread_id
    assert response.json()["metadata"] == {"topic": "support"}
    stored = canonical(api, thread_id)
    assert stored["messageCount"] == 1
    assert last_event(api, thread_id)["action"] == "message_added"


def test_create_with_a_used_id_is_409_and_a_non_uuid_id_is_400(api, thread):
    envelope(api.post(THREADS, {"threadId": str(thread.pk)}), 409, "thread_exists")
    error = envelope(api.post(THREADS, {"threadId": "thread_abc"}), 400, "invalid_parameters")
    assert error["param"] == "threadId"


def test_a_stored_list_value_is_rendered_as_its_json_text(api, org):
    thread = thread_create(org=org, actor=ACTOR, data={"metadata": {"tags": ["a", "b"]}})

    assert api.get(path(thread)).json()["metadata"] == {"tags": '["a","b"]'}


def test_append_takes_a_list_and_list_answers_a_plain_list_oldest_first(api, thread):
    response = api.post(
        path(thread, "/messages"),
        [
            {"role": "user", "content": "Hello", "name": None},
            {"role": "assistant", "content": "Hi there"},
        ],
    )

    assert response.status_code == 200
    assert [m["content"] for m in response.json()] == ["Hello", "Hi there"]
    listed = api.get(path(thread, "/messages")).json()
    assert isinstance(listed, list)
    assert [m["role"] for m in listed] == ["user", "assistant"]
    assert set(listed[0]) >= {"id", "created_at", "thread_id", "role", "content", "metadata"}
    assert listed[0]["thread_id"] == str(thread.pk)
    assert canonical(api, thread.pk)["messageCount"] == 2


@pytest.mark.parametrize(
    "messages",
    [
        {"role": "user", "content": "not a list"},
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": "x", "tool_call_id": "call_1"}],
        [{"role": "user", "content": "x", "metadata": {"k": ["v"]}}],
        [{"role": "user", "content": "ok"}, {"role": "user", "content": None}],
    ],
)
def test_a_bad_message_is_400_and_adds_nothing(api, thread, messages):
    envelope(api.post(path(thread, "/messages"), messages), 400, "invalid_parameters")

    assert Thread.objects.get(pk=thread.pk).message_count == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"metadata": {"k": ["list"]}}, 400, "invalid_parameters"),
        ({"metadata": {"k": 1}}, 400, "invalid_parameters"),
        ({"title": "x"}, 400, "invalid_parameters"),
        ({"metadata": {f"k{i}": "v" for i in range(16)}}, 422, "metadata_limit_exceeded"),
    ],
)
def test_a_bad_update_is_refused_in_the_canonical_envelope_and_changes_nothing(api, thread, body, status, code):
    envelope(api.post(path(thread), body), status, code)

    assert Thread.objects.get(pk=thread.pk).version == 1


def test_delete_answers_success_and_the_thread_is_gone(api, thread):
    response = api.delete(path(thread))

    assert response.status_code == 200
    assert response.json() == {"success": True}
    envelope(api.get(path(thread)), 404, "thread_not_found")
    envelope(api.get(url(thread)), 404, "thread_not_found")


def test_another_organizations_thread_is_404_on_every_route(outsider, thread):
    for response in (
        outsider.get(path(thread)),
        outsider.post(path(thread), {"metadata": {"x": "1"}}),
        outsider.delete(path(thread)),
        outsider.get(path(thread, "/messages")),
        outsider.post(path(thread, "/messages"), [{"role": "user", "content": "x"}]),
    ):
        envelope(response, 404, "thread_not_found")
    assert Thread.objects.get(pk=thread.pk).version == 1


def test_no_credentials_is_401_and_a_read_key_or_chat_token_may_not_write(reader, thread):
    envelope(Api().get(path(thread)), 401, "authentication_required")
    assert reader.get(path(thread)).status_code == 200
    envelope(reader.post(path(thread), {"metadata": {"x": "1"}}), 403, "permission_denied")
    envelope(chat_api(thread).get(path(thread)), 403, "permission_denied")


def test_a_user_token_writes_as_the_user(member_api, api, thread):
    assert member_api.post(path(thread), {"metadata": {"b": "2"}}).status_code == 200

    assert last_event(api, thread.pk)["actor"]["type"] == "user"


@pytest.fixture
def lb(write_key, live_server, monkeypatch) -> Langbase:
    """The real SDK, pointed at this service. The live server answers from threads of its own;
    a connection kept open there (CONN_MAX_AGE) would stop PostgreSQL dropping the test database."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    return Langbase(api_key=write_key, base_url=live_server.url)


def test_the_real_langbase_sdk_round_trips_all_six_calls(lb, api):

    created = lb.threads.create(
        metadata={"userId": "user123", "topic": "support"},
        messages=[{"role": "user", "content": "Hello"}],
    )
    thread_id = created["id"]
    assert created["object"] == "thread"
    assert isinstance(created["created_at"], int)

    assert lb.threads.get(thread_id) == created

    updated = lb.threads.update(thread_id, {"status": "resolved", "priority": "high"})
    assert updated["metadata"] == {
        "userId": "user123",
        "topic": "support",
        "status": "resolved",
        "priority": "high",
    }

    appended = lb.threads.append(thread_id, [{"role": "assistant", "content": "Hi, how can I help?"}])
    assert [m["content"] for m in appended] == ["Hi, how can I help?"]

    listed = lb.threads.messages.list(thread_id)
    assert [(m["role"], m["content"]) for m in listed] == [
        ("user", "Hello"),
        ("assistant", "Hi, how can I help?"),
    ]
    assert canonical(api, thread_id)["metadata"]["status"] == "resolved"

    assert lb.threads.delete(thread_id) == {"success": True}
    with pytest.raises(NotFoundError) as error:
        lb.threads.get(thread_id)
    assert error.value.code == "thread_not_found"


def test_the_sdk_sees_a_refused_id_as_a_bad_request(lb):

    with pytest.raises(BadRequestError) as error:
        lb.threads.create(thread_id="thread_abc123")
    assert error.value.param == "threadId"
