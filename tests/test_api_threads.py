"""The canonical REST API: create, retrieve, merge PATCH, delete, and the error envelope."""

import uuid

import pytest
from django.test import override_settings

from threads.models import Event, Thread

from .conftest import url

pytestmark = pytest.mark.django_db


def envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert set(body["error"]) <= {"type", "code", "message", "param"}
    return body["error"]


def test_create_returns_201_with_location_etag_and_the_canonical_shape(api, org):
    response = api.post("/api/v1/threads", {"title": "Hi", "metadata": {"a": "1"}, "tags": ["X"]})
    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == f"/api/v1/threads/{body['id']}"
    assert response["ETag"] == '"1"'
    assert set(body) == {
        "id",
        "object",
        "title",
        "metadata",
        "variables",
        "tags",
        "isArchived",
        "isActive",
        "visibleInUi",
        "isPinned",
        "projectId",
        "assistantId",
        "userId",
        "organizationId",
        "messageCount",
        "lastActivityAt",
        "createdAt",
        "updatedAt",
        "version",
    }
    assert body["object"] == "thread"
    assert body["tags"] == ["x"]
    assert body["organizationId"] == str(org.pk)
    assert (body["isArchived"], body["isActive"], body["visibleInUi"], body["isPinned"]) == (
        False,
        True,
        True,
        False,
    )
    assert body["messageCount"] == 0 and body["lastActivityAt"] is None and body["version"] == 1
    assert body["createdAt"].endswith("Z")


def test_create_accepts_a_client_uuid_and_refuses_its_reuse_with_409(api):
    thread_id = str(uuid.uuid4())
    assert api.post("/api/v1/threads", {"id": thread_id}).json()["id"] == thread_id
    error = envelope(api.post("/api/v1/threads", {"id": thread_id, "title": "again"}), 409, "thread_exists")
    assert error["type"] == "conflict_error"
    assert Thread.objects.get(pk=thread_id).title == ""


def test_the_id_of_a_deleted_thread_cannot_be_reused_409(api):
    """Its history stays under that id (found by tests/test_fuzz.py: it was a 500)."""
    thread_id = str(uuid.uuid4())
    api.post("/api/v1/threads", {"id": thread_id, "title": "first"})
    assert api.delete(f"/api/v1/threads/{thread_id}").status_code == 204
    envelope(api.post("/api/v1/threads", {"id": thread_id, "title": "second"}), 409, "thread_exists")
    assert not Thread.objects.filter(pk=thread_id).exists()
    assert [e.action for e in Event.objects.filter(thread_id=thread_id).order_by("version")] == ["created", "deleted"]


def test_create_validates_like_patch(api):
    envelope(api.post("/api/v1/threads", {"id": "nope"}), 400, "invalid_parameters")
    envelope(
        api.post("/api/v1/threads", {"metadata": {f"k{i}": "v" for i in range(17)}}), 422, "metadata_limit_exceeded"
    )
    assert Thread.objects.count() == 0


def test_retrieve_returns_the_thread_with_its_etag(api, thread):
    response = api.get(url(thread))
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    assert response.json()["metadata"] == {"a": "1"}


def test_patch_merges_and_bumps_the_version(api, thread):
    response = api.patch(url(thread), {"metadata": {"b": "2"}, "variables": {"v": None}})
    assert response.status_code == 200
    body = response.json()
    assert body["metadata"] == {"a": "1", "b": "2"}
    assert body["variables"] == {}
    assert body["version"] == 2 and response["ETag"] == '"2"'
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1", "b": "2"} and thread.version == 2


def test_patch_sets_every_writable_field(api, thread):
    patch = {
        "title": "New",
        "tags": ["A", "b"],
        "isArchived": True,
        "isActive": False,
        "visibleInUi": False,
        "isPinned": True,
        "projectId": "p1",
        "assistantId": "a1",
        "userId": "u1",
    }
    body = api.patch(url(thread), patch).json()
    assert body["tags"] == ["a", "b"]
    assert {k: body[k] for k in patch if k != "tags"} == {k: v for k, v in patch.items() if k != "tags"}


def test_an_empty_patch_is_a_no_op_that_returns_the_thread(api, thread):
    response = api.patch(url(thread), {})
    assert response.status_code == 200 and response.json()["version"] == 1


def test_a_patch_that_changes_nothing_keeps_the_version_and_writes_no_event(api, thread):
    before = Event.objects.count()
    body = api.patch(url(thread), {"metadata": {"a": "1"}, "title": "Hello", "addTags": ["one"]}).json()
    assert body["version"] == 1
    assert Event.objects.count() == before


def test_a_rejected_request_changes_nothing(api, thread):
    too_many = {f"k{i}": "v" for i in range(16)}
    response = api.patch(url(thread), {"title": "Changed", "metadata": too_many})
    error = envelope(response, 422, "metadata_limit_exceeded")
    assert error["param"] == "metadata" and error["type"] == "validation_error"
    thread.refresh_from_db()
    assert (thread.title, thread.metadata, thread.version) == ("Hello", {"a": "1"}, 1)
    assert Event.objects.filter(thread_id=thread.pk).count() == 1


def test_unknown_and_read_only_fields_are_rejected_with_param(api, thread):
    assert envelope(api.patch(url(thread), {"colour": "red"}), 400, "invalid_parameters")["param"] == "colour"
    assert envelope(api.patch(url(thread), {"version": 9}), 400, "invalid_parameters")["param"] == "version"


@pytest.mark.parametrize(
    "patch",
    [
        {"title": "a\u0000b"},
        {"metadata": {"k": "\u0000"}},
        {"metadata": {"\u0000": "v"}},
        {"variables": {"k": "x\u0000"}},
        {"tags": ["\u0000"]},
    ],
)
def test_a_nul_character_is_400_never_500(api, thread, patch):
    envelope(api.patch(url(thread), patch), 400, "invalid_parameters")
    envelope(api.post("/api/v1/threads", patch), 400, "invalid_parameters")


def test_a_nul_character_in_a_list_filter_is_400(api, thread):
    envelope(api.get("/api/v1/threads", {"search": "a\x00"}), 400, "invalid_parameters")
    envelope(api.get("/api/v1/threads", {"metadata.a": "\x00"}), 400, "invalid_parameters")


def test_if_match_with_the_current_version_writes(api, thread):
    response = api.patch(url(thread), {"title": "ok"}, **{"If-Match": '"1"'})
    assert response.status_code == 200 and response.json()["version"] == 2


def test_if_match_with_a_stale_version_is_412_and_writes_nothing(api, thread):
    error = envelope(api.patch(url(thread), {"title": "late"}, **{"If-Match": '"7"'}), 412, "version_mismatch")
    assert error["type"] == "precondition_failed_error"
    thread.refresh_from_db()
    assert thread.title == "Hello"


def test_if_match_applies_to_delete(api, thread):
    envelope(api.delete(url(thread), **{"If-Match": '"2"'}), 412, "version_mismatch")
    assert api.delete(url(thread), **{"If-Match": '"1"'}).status_code == 204


def test_delete_removes_the_thread_and_then_it_is_404(api, thread):
    assert api.delete(url(thread)).status_code == 204
    assert not Thread.objects.filter(pk=thread.pk).exists()
    envelope(api.get(url(thread)), 404, "thread_not_found")
    envelope(api.delete(url(thread)), 404, "thread_not_found")


def test_a_non_uuid_id_is_404_on_every_route(api):
    for path in ["/api/v1/threads/abc", "/api/v1/threads/abc/messages", "/api/v1/threads/abc/history"]:
        envelope(api.get(path), 404, "thread_not_found")
    envelope(api.patch("/api/v1/threads/abc", {"title": "x"}), 404, "thread_not_found")
    envelope(api.delete("/api/v1/threads/abc"), 404, "thread_not_found")
    envelope(api.post("/api/v1/threads/abc/chat-token", {}), 404, "thread_not_found")


def test_invalid_json_is_400_invalid_json(api, thread):
    response = api.client.patch(url(thread), data="{bad", content_type="application/json")
    envelope(response, 400, "invalid_json")


def test_a_json_body_that_is_not_an_object_is_400(api, thread):
    envelope(api.patch(url(thread), ["title"]), 400, "invalid_parameters")


def test_a_form_body_is_415(api, thread):
    response = api.client.patch(url(thread), data="a=b", content_type="application/x-www-form-urlencoded")
    envelope(response, 415, "unsupported_media_type")


def test_an_unsupported_method_is_405_in_the_envelope(api, thread):
    envelope(api.put(url(thread), {"title": "x"}), 405, "method_not_allowed")


def test_a_body_over_256_kib_is_413(api, thread):
    response = api.patch(url(thread), {"title": "x" * (256 * 1024)})
    envelope(response, 413, "payload_too_large")


def test_an_unknown_route_is_404_in_the_envelope(api):
    envelope(api.get("/api/v1/nothing-here"), 404, "not_found")


UNKNOWN_API_PATHS = [
    "/api/v1/nothing-here",
    "/api/v1/threads/x/y/z",
    "/api/chat/nothing",
    "/api/nothing",
    "/v1/nothing",
    "/v1/threads/x/metadata/y",
    "/langgraph/nothing",
]


@pytest.mark.parametrize("path", UNKNOWN_API_PATHS)
@pytest.mark.parametrize("method", ["get", "post", "patch"])
def test_under_debug_an_unknown_api_route_is_still_the_404_envelope(api, settings, path, method):
    settings.DEBUG = True  # as under `make run`: Django would answer its HTML page listing every URL
    response = getattr(api, method)(path)
    envelope(response, 404, "not_found")
    assert "urlpatterns" not in response.content.decode() and "URLconf" not in response.content.decode()


@pytest.mark.parametrize("path", ["/ops/nothing-here", "/admin/nothing-here/"])
def test_under_debug_a_page_for_people_keeps_django_s_debug_404(admin_client, settings, path):
    settings.DEBUG = True
    response = admin_client.get(path)
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@override_settings(DEBUG=False)
def test_an_unexpected_error_is_a_bare_500(api, thread, monkeypatch):
    # An injected fault inside the ORM: the response must say nothing about it.
    from django.db.models import query

    def explode(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM internals")

    monkeypatch.setattr(query.QuerySet, "first", explode)
    api.client.raise_request_exception = False
    response = api.get(url(thread))
    error = envelope(response, 500, "internal_error")
    assert "SELECT" not in response.content.decode() and "Traceback" not in response.content.decode()
    assert error["type"] == "api_error"
