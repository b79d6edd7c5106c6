"""Seed 001 (thread metadata): PATCH /v1/threads/{thread_id}/metadata."""

from __future__ import annotations

import uuid

import pytest

from threads.compat.freddy import ThreadMetadataView
from threads.models import Thread
from threads.services import thread_create

from .compat_support import canonical, chat_api, last_event
from .conftest import ACTOR, Api

pytestmark = pytest.mark.django_db

EXAMPLE = {
    "metadata": {
        "category": "support",
        "priority": "high",
        "status": "resolved",
        "tags": ["billing", "resolved"],
    }
}


def path(thread_or_id) -> str:
    return f"/v1/threads/{getattr(thread_or_id, 'pk', thread_or_id)}/metadata"


def assert_error(response, status: int, type_: str, code: str, message: str | None = None):
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) <= {"message", "type", "code", "param"}
    assert (body["error"]["type"], body["error"]["code"]) == (type_, code)
    if message is not None:
        assert body["error"]["message"] == message
    return body["error"]


@pytest.fixture
def support_thread(org):
    return thread_create(
        org=org,
        actor=ACTOR,
        data={
            "title": "Customer Support Query",
            "assistantId": "asst_support_agent",
            "userId": "uid_user123",
        },
    )


def test_the_documented_update_merges_metadata_and_answers_the_documented_shape(api, org, support_thread):
    response = api.patch(path(support_thread), EXAMPLE)

    assert response.status_code == 200
    body = response.json()
    support_thread.refresh_from_db()
    assert body == {
        "id": str(support_thread.pk),
        "object": "thread",
        "createdAt": int(support_thread.created_at.timestamp()),
        "updatedAt": int(support_thread.updated_at.timestamp()),
        "metadata": EXAMPLE["metadata"],
        "assistantId": "asst_support_agent",
        "organizationId": str(org.pk),
        "userId": "uid_user123",
        "title": "Customer Support Query",
        "visibleInUi": True,
        "messageCount": 0,
    }
    assert support_thread.metadata == EXAMPLE["metadata"]


def test_the_documented_hide_from_ui_sets_visible_in_ui_and_keeps_metadata(api, thread):
    response = api.patch(path(thread), {"visibleInUi": False})

    assert response.status_code == 200
    assert response.json()["visibleInUi"] is False
    assert response.json()["metadata"] == {"a": "1"}
    thread.refresh_from_db()
    assert thread.visible_in_ui is False


def test_a_user_token_may_update_too_and_history_names_the_user(member_api, api, thread):
    assert member_api.patch(path(thread), {"metadata": {"b": "2"}}).status_code == 200

    assert canonical(api, thread.pk)["metadata"] == {"a": "1", "b": "2"}
    event = last_event(api, thread.pk)
    assert event["actor"]["type"] == "user"
    assert event["actor"]["name"] == "mia"


def test_a_change_shows_in_the_canonical_api_and_history_as_the_api_key(api, thread):
    api.patch(path(thread), {"metadata": {"a": None, "b": "2"}, "visibleInUi": False})

    stored = canonical(api, thread.pk)
    assert stored["metadata"] == {"b": "2"}
    assert stored["visibleInUi"] is False
    event = last_event(api, thread.pk)
    assert event["actor"]["type"] == "api_key"
    assert event["changes"] == {
        "metadata": {"a": {"from": "1", "to": None}, "b": {"from": None, "to": "2"}},
        "visibleInUi": {"from": True, "to": False},
    }


def test_more_than_16_keys_is_the_documented_422_and_changes_nothing(api, thread):
    response = api.patch(path(thread), {"metadata": {f"k{i}": "v" for i in range(16)}})

    error = assert_error(
        response,
        422,
        "validation_error",
        "metadata_limit_exceeded",
        "Metadata cannot exceed 16 key-value pairs",
    )
    assert error["param"] == "metadata"
    assert Thread.objects.get(pk=thread.pk).metadata == {"a": "1"}


@pytest.mark.parametrize(
    "body",
    [
        {"title": "not here"},
        {"unknown": 1},
        {"visibleInUi": "no"},
        {"metadata": {"x": 1}},
        {"metadata": "flat"},
        ["a list"],
    ],
)
def test_invalid_parameters_are_the_documented_400_and_change_nothing(api, thread, body):
    error = assert_error(api.patch(path(thread), body), 400, "invalid_request_error", "invalid_parameters")

    assert error["message"].startswith("Invalid request parameters")
    assert Thread.objects.get(pk=thread.pk).version == 1


def test_invalid_json_is_a_400_invalid_parameters(api, thread):
    response = api.client.patch(path(thread), data="{", content_type="application/json")

    assert_error(response, 400, "invalid_request_error", "invalid_parameters")


@pytest.mark.parametrize("thread_id", [uuid.uuid4(), "thread_abc123"])
def test_a_missing_thread_or_a_non_uuid_id_is_the_documented_404(api, thread_id):
    response = api.patch(path(thread_id), EXAMPLE)

    assert_error(response, 404, "not_found_error", "thread_not_found", "Thread not found or access denied")


def test_another_organizations_thread_is_the_documented_404_and_stays_unchanged(outsider, thread):
    response = outsider.patch(path(thread), EXAMPLE)

    assert_error(response, 404, "not_found_error", "thread_not_found", "Thread not found or access denied")
    assert Thread.objects.get(pk=thread.pk).metadata == {"a": "1"}


def test_no_credentials_is_401_in_the_error_envelope(thread):
    response = Api().patch(path(thread), EXAMPLE)

    assert_error(response, 401, "authentication_error", "authentication_required")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_read_key_a_viewer_and_a_chat_token_are_403(reader, viewer_api, thread):
    for client in (reader, viewer_api, chat_api(thread)):
        assert_error(client.patch(path(thread), EXAMPLE), 403, "permission_error", "permission_denied")
    assert Thread.objects.get(pk=thread.pk).version == 1


def test_an_unexpected_error_is_500_in_the_error_envelope_with_no_details():
    response = ThreadMetadataView().handle_error(RuntimeError("secret SQL"), {})

    assert response.status_code == 500
    assert response.data == {
        "error": {
            "message": "Internal server error.",
            "type": "api_error",
            "code": "internal_error",
        }
    }
