"""Seed 000 (web chat): PATCH /api/v1/chat/threads/{threadId} with a chat token."""

from __future__ import annotations

import json

import pytest
from django.urls import resolve

from threads.api.tokens import ChatToken
from threads.compat.feather import ChatThreadSessionView
from threads.models import Thread
from threads.services import thread_create, thread_delete

from .compat_support import canonical, chat_api, last_event
from .conftest import ACTOR, Api

pytestmark = pytest.mark.django_db


def path(thread_or_id) -> str:
    return f"/api/v1/chat/threads/{getattr(thread_or_id, 'pk', thread_or_id)}"


def error(status: int, code: str) -> dict:
    return {"status": status, "code": code, "success": False}


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"status", "message", "code", "success"}
    assert {k: body[k] for k in ("status", "code", "success")} == error(status, code)
    assert isinstance(body["message"], str) and body["message"]


def test_the_route_is_not_shadowed_by_the_canonical_thread_route(thread):
    assert resolve(path(thread)).func.view_class is ChatThreadSessionView


def test_it_merges_metadata_and_variables_and_answers_the_documented_shape(thread):
    response = chat_api(thread).patch(path(thread), {"metadata": {"plan": "pro"}, "variables": {"name": "Ada"}})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["thread"]
    assert set(body["thread"]) == {
        "threadId",
        "metadata",
        "variables",
        "isActive",
        "createdAt",
        "lastActivityAt",
    }
    assert body["thread"]["threadId"] == str(thread.pk)
    assert body["thread"]["metadata"] == {"a": "1", "plan": "pro"}
    assert body["thread"]["variables"] == {"v": "x", "name": "Ada"}
    assert body["thread"]["isActive"] is True
    assert body["thread"]["createdAt"].endswith("Z")
    assert body["thread"]["lastActivityAt"] is None
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1", "plan": "pro"}
    assert thread.variables == {"v": "x", "name": "Ada"}


def test_a_null_value_removes_a_key_and_an_empty_body_changes_nothing(thread):
    client = chat_api(thread)

    assert client.patch(path(thread), {"metadata": {"a": None}}).json()["thread"]["metadata"] == {}
    version = Thread.objects.get(pk=thread.pk).version
    assert client.patch(path(thread), {}).status_code == 200
    assert Thread.objects.get(pk=thread.pk).version == version


def test_a_stored_list_value_is_rendered_as_its_json_text(org):
    thread = thread_create(org=org, actor=ACTOR, data={"metadata": {"tags": ["a", "b"]}})

    response = chat_api(thread).patch(path(thread), {})

    assert response.json()["thread"]["metadata"] == {"tags": '["a","b"]'}


def test_a_change_shows_in_the_canonical_api_and_its_history_as_the_chat_token(api, thread):
    chat_api(thread).patch(path(thread), {"metadata": {"plan": "pro"}, "variables": {"v": None}})

    stored = canonical(api, thread.pk)
    assert stored["metadata"] == {"a": "1", "plan": "pro"}
    assert stored["variables"] == {}
    event = last_event(api, thread.pk)
    assert event["action"] == "updated"
    assert event["actor"]["type"] == "chat_token"
    assert event["changes"]["metadata"] == {"plan": {"from": None, "to": "pro"}}


def test_no_token_is_401_unauthorized_in_the_surface_shape(thread):
    response = Api().patch(path(thread), {"metadata": {"x": "1"}})

    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_401_unauthorized(thread):
    assert_error(Api("not-a-jwt").patch(path(thread), {}), 401, "UNAUTHORIZED")


def test_an_api_key_or_a_user_token_is_401_because_only_a_chat_token_may_call_it(api, member_api, thread):
    for client in (api, member_api):
        response = client.patch(path(thread), {"metadata": {"x": "1"}})
        assert_error(response, 401, "UNAUTHORIZED")
        message = response.json()["message"]
        assert "takes a chat token" in message and "/chat-token" in message
        assert "credentials were not provided" not in message  # some were: the wrong kind
    assert Thread.objects.get(pk=thread.pk).version == 1


def test_no_credentials_at_all_is_told_as_such(thread):
    response = Api().patch(path(thread), {"metadata": {"x": "1"}})
    assert response.json()["message"] == "Authentication credentials were not provided."


@pytest.mark.parametrize("thread_id", ["abc", "not-a-uuid", "1234"])
def test_a_path_that_is_not_a_uuid_is_404_not_found_for_a_chat_token(thread, thread_id):
    response = chat_api(thread).patch(path(thread_id), {"metadata": {"x": "1"}})

    assert_error(response, 404, "NOT_FOUND")
    assert Thread.objects.get(pk=thread.pk).version == 1


def test_a_chat_token_for_another_thread_is_403_forbidden(org, thread):
    other = thread_create(org=org, actor=ACTOR, data={})

    response = chat_api(other).patch(path(thread), {"metadata": {"x": "1"}})

    assert_error(response, 403, "FORBIDDEN")
    assert Thread.objects.get(pk=thread.pk).metadata == {"a": "1"}


def test_a_deleted_thread_is_404_not_found(org, thread):
    client = chat_api(thread)
    thread_delete(org=org, thread_id=thread.pk, actor=ACTOR)

    assert_error(client.patch(path(thread), {"metadata": {"x": "1"}}), 404, "NOT_FOUND")


def test_a_token_naming_another_organization_finds_no_thread(other_org, thread):
    token = ChatToken.for_thread(thread)
    token["org_id"] = str(other_org.pk)

    assert_error(Api(str(token)).patch(path(thread), {}), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"x": ["a", "b"]}},
        {"metadata": {"x": 1}},
        {"variables": {"x": True}},
        {"metadata": "nope"},
        {"title": "not writable here"},
        {"unknown": 1},
        ["not", "an", "object"],
        {"metadata": {"nul": "a\x00b"}},
    ],
)
def test_a_malformed_body_is_400_bad_request_and_changes_nothing(thread, body):
    assert_error(chat_api(thread).patch(path(thread), body), 400, "BAD_REQUEST")
    assert Thread.objects.get(pk=thread.pk).version == 1


def test_invalid_json_is_400_bad_request(thread):
    response = chat_api(thread).client.patch(path(thread), data="{nope", content_type="application/json")

    assert_error(response, 400, "BAD_REQUEST")


def test_a_limit_error_is_told_as_400_bad_request(thread):
    too_many = {f"k{i}": "v" for i in range(16)}

    response = chat_api(thread).patch(path(thread), {"metadata": too_many})

    assert_error(response, 400, "BAD_REQUEST")
    assert response.json()["message"] == "Metadata cannot exceed 16 key-value pairs"
    assert Thread.objects.get(pk=thread.pk).metadata == {"a": "1"}


def test_an_unexpected_error_is_500_internal_server_error_with_no_details():
    response = ChatThreadSessionView().handle_error(RuntimeError("secret SQL"), {})

    assert response.status_code == 500
    assert response.data == {
        "status": 500,
        "message": "Internal server error",
        "code": "INTERNAL_SERVER_ERROR",
        "success": False,
    }
    assert "secret" not in json.dumps(response.data)


def test_a_body_that_is_not_json_is_400_bad_request(thread):
    response = chat_api(thread).client.patch(path(thread), data="a=1", content_type="text/plain")

    assert_error(response, 400, "BAD_REQUEST")


def test_another_method_is_405_in_the_surface_shape(thread):
    assert_error(chat_api(thread).get(path(thread)), 405, "METHOD_NOT_ALLOWED")
