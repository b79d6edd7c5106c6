"""Seed 002 (FastAPI chat threads): PATCH /api/chat/threads/{thread_id}."""

from __future__ import annotations

import uuid

import pytest

from threads.compat.chatthread import ChatThreadView
from threads.models import Thread

from .compat_support import canonical, chat_api, last_event
from .conftest import Api

pytestmark = pytest.mark.django_db

REQUIRED = {"threadId", "title", "projectId", "createdAt", "messageCount", "tags"}


def path(thread_or_id) -> str:
    return f"/api/chat/threads/{getattr(thread_or_id, 'pk', thread_or_id)}"


def detail(response, status: int):
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["detail"]
    return body["detail"]


def assert_unchanged(thread) -> None:
    assert Thread.objects.get(pk=thread.pk).version == thread.version


def test_it_updates_title_tags_and_archive_status_and_answers_a_chat_thread(api, thread):
    response = api.patch(path(thread), {"title": "Renamed", "tags": ["Billing", "urgent"], "isArchived": True})

    assert response.status_code == 200
    body = response.json()
    assert REQUIRED <= set(body)
    assert body["threadId"] == str(thread.pk)
    assert body["title"] == "Renamed"
    assert body["tags"] == ["billing", "urgent"]
    assert body["isArchived"] is True
    assert body["projectId"] == ""
    assert body["messageCount"] == 0
    assert body["createdAt"].endswith("Z")
    assert body["version"] == "2"
    assert {"isActive", "isPinned", "userId", "modifiedAt", "lastMessageAt"} <= set(body)
    thread.refresh_from_db()
    assert (thread.title, thread.tags, thread.is_archived) == (
        "Renamed",
        ["billing", "urgent"],
        True,
    )


def test_a_null_field_leaves_the_field_as_it_is(api, thread):
    response = api.patch(path(thread), {"title": None, "tags": None, "isArchived": False})

    assert response.status_code == 200
    assert response.json()["title"] == "Hello"
    assert response.json()["tags"] == ["one"]
    assert_unchanged(thread)


def test_a_change_shows_in_the_canonical_api_and_history_as_the_user(member_api, api, thread):
    member_api.patch(path(thread), {"title": "From chat UI", "tags": ["two"]})

    stored = canonical(api, thread.pk)
    assert (stored["title"], stored["tags"]) == ("From chat UI", ["two"])
    event = last_event(api, thread.pk)
    assert event["actor"]["type"] == "user"
    assert event["changes"]["title"] == {"from": "Hello", "to": "From chat UI"}


def test_wrong_types_are_fastapis_422_listing_every_problem(api, thread):
    response = api.patch(path(thread), {"title": 5, "tags": ["ok", 7], "isArchived": "maybe"})

    assert detail(response, 422) == [
        {
            "type": "string_type",
            "loc": ["body", "title"],
            "msg": "Input should be a valid string",
            "input": 5,
        },
        {
            "type": "string_type",
            "loc": ["body", "tags", 1],
            "msg": "Input should be a valid string",
            "input": 7,
        },
        {
            "type": "bool_parsing",
            "loc": ["body", "isArchived"],
            "msg": "Input should be a valid boolean, unable to interpret input",
            "input": "maybe",
        },
    ]
    assert_unchanged(thread)


@pytest.mark.parametrize(("value", "stored"), [("yes", True), ("true", True), (1, True), (1.0, True), ("off", False)])
def test_booleans_are_pydantics_lax_ones(api, thread, value, stored):
    response = api.patch(path(thread), {"isArchived": value})

    assert response.status_code == 200
    assert response.json()["isArchived"] is stored
    thread.refresh_from_db()
    assert thread.is_archived is stored


def test_tags_that_are_not_a_list_are_a_list_type_error(api, thread):
    problems = detail(api.patch(path(thread), {"tags": "billing"}), 422)

    assert problems == [
        {
            "type": "list_type",
            "loc": ["body", "tags"],
            "msg": "Input should be a valid list",
            "input": "billing",
        }
    ]


def test_an_unknown_field_is_refused_as_extra_forbidden(api, thread):
    problems = detail(api.patch(path(thread), {"title": "x", "metadata": {"a": "2"}}), 422)

    assert problems == [
        {
            "type": "extra_forbidden",
            "loc": ["body", "metadata"],
            "msg": "Extra inputs are not permitted",
            "input": {"a": "2"},
        }
    ]
    assert_unchanged(thread)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"", "application/json", {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}),
        (b"null", "application/json", {"type": "model_attributes_type", "loc": ["body"], "input": None}),
        (b'["x"]', "application/json", {"type": "model_attributes_type", "loc": ["body"], "input": ["x"]}),
        (b"title=x", "text/plain", {"type": "model_attributes_type", "loc": ["body"], "input": "title=x"}),
        (b"{bad json", "application/json", {"type": "json_invalid", "loc": ["body", 1], "input": {}}),
        (b'{"title": "a",}', "application/merge-patch+json", {"type": "json_invalid", "loc": ["body", 14]}),
    ],
)
def test_a_missing_non_object_or_malformed_body_is_a_422(api, thread, body, content_type, expected):
    response = api.client.patch(path(thread), data=body, content_type=content_type)

    [problem] = detail(response, 422)
    assert expected.items() <= problem.items()
    assert_unchanged(thread)


def test_malformed_json_names_the_position_and_the_decoders_message(api, thread):
    response = api.client.patch(path(thread), data="{bad json", content_type="application/json")

    [problem] = detail(response, 422)
    assert problem["msg"] == "JSON decode error"
    assert problem["ctx"] == {"error": "Expecting property name enclosed in double quotes"}


@pytest.mark.parametrize(
    "body",
    [b'{"isArchived": NaN}', b'{"title": 1e400}', b'{"title": "\\ud800"}', b'{"title": "caf\xe9"}', b"[" * 100_000],
    ids=["nan", "overflow", "lone-surrogate", "latin1", "deep"],
)
def test_a_body_that_cannot_be_read_rendered_or_stored_is_400(api, thread, body):
    response = api.client.patch(path(thread), data=body, content_type="application/json")

    assert detail(response, 400) == "There was an error parsing the body"
    assert_unchanged(thread)


@pytest.mark.parametrize(
    ("body", "field", "type_"),
    [
        ({"title": "x" * 257}, "title", "title_too_long"),
        ({"tags": ["x" * 65]}, "tags", "tags_invalid"),
        ({"tags": [f"t{i}" for i in range(33)]}, "tags", "tags_invalid"),
        ({"title": "a\x00b"}, "title", "invalid_parameters"),
    ],
)
def test_a_value_the_rules_refuse_is_a_422_on_its_field_and_changes_nothing(api, thread, body, field, type_):
    [problem] = detail(api.patch(path(thread), body), 422)

    assert problem["loc"] == ["body", field]
    assert problem["type"] == type_
    assert problem["input"] == body[field]
    assert isinstance(problem["msg"], str)
    assert_unchanged(thread)


@pytest.mark.parametrize("thread_id", [uuid.uuid4(), "not-a-uuid"])
def test_a_missing_thread_is_404_thread_not_found(api, thread_id):
    assert detail(api.patch(path(thread_id), {"title": "x"}), 404) == "Thread not found"


def test_another_organizations_thread_is_404_and_stays_unchanged(outsider, thread):
    assert detail(outsider.patch(path(thread), {"title": "x"}), 404) == "Thread not found"
    assert_unchanged(thread)


def test_no_credentials_is_401_not_authenticated(thread):
    response = Api().patch(path(thread), {"title": "x"})

    assert detail(response, 401) == "Not authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_401(thread):
    assert isinstance(detail(Api("garbage").patch(path(thread), {"title": "x"}), 401), str)


def test_a_read_key_and_a_chat_token_are_403(reader, thread):
    for client in (reader, chat_api(thread)):
        assert isinstance(detail(client.patch(path(thread), {"title": "x"}), 403), str)
    assert_unchanged(thread)


def test_another_method_is_405_in_the_detail_shape(api, thread):
    assert detail(api.get(path(thread)), 405) == "Method Not Allowed"


def test_an_unexpected_error_is_500_with_a_bare_detail():
    response = ChatThreadView().handle_error(RuntimeError("secret SQL"), {})

    assert (response.status_code, response.data) == (500, {"detail": "Internal Server Error"})
