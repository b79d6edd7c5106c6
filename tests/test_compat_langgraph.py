"""LangGraph threads (/langgraph/threads…): the real ``langgraph-sdk`` against ``manage.py serve``,
and the wire details the SDK hides through the test client."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableEntityError,
)

from threads.models import Event, Message, Thread
from threads.services import message_add, thread_create

from .compat_support import canonical, chat_api
from .conftest import ACTOR, Api, url

THREADS = "/langgraph/threads"
sdk = pytest.mark.django_db(transaction=True)
wire = pytest.mark.django_db


def path(thread_or_id, suffix: str = "") -> str:
    return f"{THREADS}/{getattr(thread_or_id, 'pk', thread_or_id)}{suffix}"


def detail(response, status: int) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str), body
    return body["detail"]


def lg(serve_url: str, key: str):
    return get_sync_client(url=f"{serve_url}/langgraph", api_key=key).threads


@pytest.fixture
def threads(serve_url, write_key):
    return lg(serve_url, write_key)


# --- the real SDK against the production server ----------------------------------------------


@sdk
def test_the_sdk_creates_gets_updates_copies_and_deletes(threads, api):
    created = threads.create(metadata={"user": "ada", "graph_id": "agent"})
    assert set(created) == {
        "thread_id",
        "created_at",
        "updated_at",
        "state_updated_at",
        "metadata",
        "status",
        "config",
        "values",
        "interrupts",
    }
    assert (created["status"], created["config"], created["values"], created["interrupts"]) == ("idle", {}, None, {})
    assert datetime.fromisoformat(created["created_at"]).utcoffset() is not None
    assert threads.get(created["thread_id"]) == created

    updated = threads.update(created["thread_id"], metadata={"user": None, "plan": "pro"})
    assert updated["metadata"] == {"graph_id": "agent", "plan": "pro"}  # merged; null removed the key
    assert threads.update(created["thread_id"], metadata={"plan": "team"}, return_minimal=True) is None
    stored = canonical(api, created["thread_id"])
    assert stored["metadata"] == {"graph_id": "agent", "plan": "team"} and stored["version"] == 3
    assert stored["createdAt"].replace("Z", "+00:00")[:19] == created["created_at"][:19]

    api.post(url(created["thread_id"], "/messages"), {"role": "user", "content": "hello"})
    copy = threads.copy(created["thread_id"])
    assert copy["thread_id"] != created["thread_id"] and copy["metadata"] == {"graph_id": "agent", "plan": "team"}
    assert canonical(api, copy["thread_id"])["messageCount"] == 1

    assert threads.delete(created["thread_id"]) is None
    with pytest.raises(NotFoundError):
        threads.get(created["thread_id"])
    assert threads.get(copy["thread_id"])["thread_id"] == copy["thread_id"]


@sdk
def test_create_with_an_id_and_if_exists(threads, serve_url, other_key, api):
    thread_id = str(uuid.uuid4())
    first = threads.create(thread_id=thread_id, metadata={"a": "1"})
    assert first["thread_id"] == thread_id

    with pytest.raises(ConflictError):
        threads.create(thread_id=thread_id)
    again = threads.create(thread_id=thread_id, metadata={"a": "2"}, if_exists="do_nothing")
    assert again == first  # the existing thread, unchanged
    assert canonical(api, thread_id)["version"] == 1

    outsider = lg(serve_url, other_key)
    with pytest.raises(ConflictError):  # another organization's id is never handed out
        outsider.create(thread_id=thread_id, if_exists="do_nothing")
    with pytest.raises(NotFoundError):
        outsider.get(thread_id)


@sdk
def test_search_filters_sorts_and_pages_and_count_agrees(threads, org):
    made = [threads.create(metadata={"team": "red" if n % 2 else "blue", "n": str(n)}) for n in range(7)]
    newest_first = [t["thread_id"] for t in reversed(made)]

    assert [t["thread_id"] for t in threads.search()] == newest_first  # created_at, newest first
    assert [t["thread_id"] for t in threads.search(limit=3, offset=2)] == newest_first[2:5]
    red = threads.search(metadata={"team": "red"}, sort_by="created_at", sort_order="asc")
    assert [t["metadata"]["n"] for t in red] == ["1", "3", "5"]
    assert threads.count(metadata={"team": "red"}) == 3 and threads.count() == 7
    assert threads.search(status="idle", limit=100).__len__() == 7 and threads.count(status="busy") == 0
    assert threads.search(metadata={"team": "red", "n": "3"})[0]["metadata"]["n"] == "3"
    by_id = threads.search(sort_by="thread_id", sort_order="asc", limit=1000)
    assert [t["thread_id"] for t in by_id] == sorted(newest_first, key=uuid.UUID)
    threads.update(made[0]["thread_id"], metadata={"touched": "yes"})
    assert threads.search(sort_by="updated_at", limit=1)[0]["thread_id"] == made[0]["thread_id"]
    assert threads.search(sort_by="state_updated_at", limit=1)[0]["thread_id"] == made[0]["thread_id"]
    assert set(threads.search(select=["thread_id", "metadata"], limit=1)[0]) == {"thread_id", "metadata"}
    assert threads.search(values={"messages": []}) == [] and threads.count(values={"x": 1}) == 0
    with pytest.raises(UnprocessableEntityError):
        threads.search(limit=1001)


@sdk
def test_metadata_limits_and_values_the_canonical_rules_refuse_are_422_naming_the_key(threads):
    at_bounds = {f"k{i}": "v" for i in range(15)} | {"k" * 64: "x" * 512}
    thread = threads.create(metadata=at_bounds)
    for metadata, named in (
        ({"extra": "v"}, "metadata"),
        ({"k" * 65: "v"}, "k" * 65),
        ({"k0": "x" * 513}, "metadata.k0"),
        ({"k0": 7}, "metadata.k0"),
        ({"k0": {"nested": "x"}}, "metadata.k0"),
    ):
        with pytest.raises(UnprocessableEntityError) as error:
            threads.update(thread["thread_id"], metadata=metadata)
        assert named in error.value.response.json()["detail"]
    with pytest.raises(UnprocessableEntityError):
        threads.create(metadata={"count": 3})
    assert threads.get(thread["thread_id"])["metadata"] == at_bounds
    assert Thread.objects.count() == 1


@sdk
def test_tenancy_read_keys_and_bad_keys(threads, serve_url, other_key, read_key):
    thread = threads.create(metadata={"k": "v"})
    outsider = lg(serve_url, other_key)
    outsider.create(metadata={"k": "v"})
    for call in (
        lambda: outsider.get(thread["thread_id"]),
        lambda: outsider.update(thread["thread_id"], metadata={"x": "1"}),
        lambda: outsider.copy(thread["thread_id"]),
        lambda: outsider.delete(thread["thread_id"]),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert thread["thread_id"] not in [t["thread_id"] for t in outsider.search(metadata={"k": "v"})]
    assert outsider.count(metadata={"k": "v"}) == 1 and threads.count() == 1

    reader = lg(serve_url, read_key)
    assert reader.get(thread["thread_id"])["metadata"] == {"k": "v"}
    assert len(reader.search()) == 1 and reader.count() == 1
    for call in (
        lambda: reader.create(),
        lambda: reader.update(thread["thread_id"], metadata={"x": "1"}),
        lambda: reader.copy(thread["thread_id"]),
        lambda: reader.delete(thread["thread_id"]),
    ):
        with pytest.raises(PermissionDeniedError):
            call()
    with pytest.raises(AuthenticationError):
        lg(serve_url, "tk_not-a-key").get(thread["thread_id"])
    assert Thread.objects.count() == 2 and Thread.objects.get(pk=thread["thread_id"]).version == 1


# --- the wire, through the test client --------------------------------------------------------


def key_api(key: str) -> Api:
    api = Api()
    api.client.credentials(HTTP_X_API_KEY=key)
    return api


@wire
def test_the_key_is_taken_from_x_api_key_or_bearer(write_key, api, thread):
    assert key_api(write_key).get(path(thread)).status_code == 200
    assert api.get(path(thread)).status_code == 200
    assert detail(key_api("tk_wrong").get(path(thread)), 401)
    assert detail(Api().get(path(thread)), 401)


@wire
def test_204s_are_empty_and_count_is_a_bare_integer(api, thread):
    response = api.patch(path(thread), {"metadata": {"b": "2"}}, prefer="return=minimal")
    assert (response.status_code, response.content) == (204, b"")
    assert canonical(api, thread.pk)["metadata"] == {"a": "1", "b": "2"}
    response = api.post(f"{THREADS}/count", {})
    assert response.status_code == 200 and response.content == b"1"
    response = api.delete(path(thread))
    assert (response.status_code, response.content) == (204, b"")
    assert Event.objects.filter(thread_id=thread.pk).last().action == "deleted"


@wire
def test_search_answers_a_json_array_with_langgraphs_pagination_headers(api, org):
    for _ in range(3):
        thread_create(org=org, actor=ACTOR, data={})

    response = api.post(f"{THREADS}/search", {"limit": 2, "offset": 0})
    assert isinstance(response.json(), list) and len(response.json()) == 2
    assert (response["X-Pagination-Total"], response["X-Pagination-Next"]) == ("3", "2")
    last = api.post(f"{THREADS}/search", {"limit": 2, "offset": 2})
    assert last["X-Pagination-Total"] == "3" and "X-Pagination-Next" not in last


@wire
def test_errors_are_detail_with_langgraphs_statuses(api, outsider, thread):
    assert detail(api.get(path(uuid.uuid4())), 404).startswith("Thread with ID")
    assert detail(outsider.get(path(thread)), 404) == f"Thread with ID {thread.pk} not found"
    assert detail(api.get(path("not-a-uuid")), 422) == "Invalid thread ID: must be a UUID"
    assert detail(api.post(THREADS, {"thread_id": str(thread.pk)}), 409).endswith("already exists")
    assert "ttl" in detail(api.post(THREADS, {"ttl": {"ttl": 5}}), 422)
    assert "extract" in detail(api.post(f"{THREADS}/search", {"extract": {"x": "values.a"}}), 422)
    assert detail(api.post(f"{THREADS}/search", {"limit": 0}), 422)
    assert detail(api.post(f"{THREADS}/search", {"metadata": {"a": 1}}), 422)
    assert detail(api.post(f"{THREADS}/search", {"sort_by": "title"}), 422)
    response = api.client.post(THREADS, data=b"{nope", content_type="application/json")
    assert detail(response, 422) == "Invalid JSON in request body"
    assert detail(chat_api(thread).get(path(thread)), 403)
    assert Thread.objects.count() == 1 and Thread.objects.get(pk=thread.pk).version == 1


@wire
def test_copy_keeps_the_fields_and_messages_in_order_with_new_ids(api, org, thread):
    for text in ("one", "two"):
        message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": text}, actor=ACTOR)

    response = api.post(path(thread, "/copy"))

    assert response.status_code == 200
    copy = canonical(api, response.json()["thread_id"])
    source = canonical(api, thread.pk)
    same = ("title", "metadata", "variables", "tags", "isArchived", "isPinned")
    assert {k: copy[k] for k in same} == {k: source[k] for k in same}
    copied = Message.objects.filter(thread_id=copy["id"]).order_by("created_at", "id")
    assert [m.content for m in copied] == ["one", "two"]
    assert not set(copied.values_list("pk", flat=True)) & set(thread.messages.values_list("pk", flat=True))
    assert api.get(url(copy["id"], "/history")).json()["results"][-1]["action"] == "created"


@sdk
def test_the_reference_snippet_runs_as_written(serve_url, write_key, capsys):
    from .test_compat_openai import run_snippet

    run_snippet("from langgraph_sdk import get_sync_client", serve_url, write_key)
    copy = Thread.objects.get()  # the original is deleted, its copy stays
    assert copy.metadata == {"graph_id": "agent", "plan": "pro"}
    assert "'plan': 'pro'" in capsys.readouterr().out
