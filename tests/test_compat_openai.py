"""OpenAI Conversations (/v1/conversations…): the real ``openai`` SDK against ``manage.py serve``,
and the wire details the SDK hides through the test client."""

from __future__ import annotations

import uuid

import openai
import pytest
from openai import OpenAI

from threads.models import Event, Message, Thread
from threads.services import message_add, thread_create

from .compat_support import canonical, chat_api
from .conftest import ACTOR, Api, url

CONVERSATIONS = "/v1/conversations"


def conv(thread_or_id) -> str:
    return f"conv_{uuid.UUID(str(getattr(thread_or_id, 'pk', thread_or_id))).hex}"


def thread_of(conversation_id: str) -> str:
    return str(uuid.UUID(conversation_id.removeprefix("conv_")))


def envelope(response, status: int, code, param=None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["code"], body["error"]["param"]) == (code, param), body
    return body["error"]


# --- the real SDK against the production server ----------------------------------------------

sdk = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(serve_url, write_key) -> OpenAI:
    return OpenAI(base_url=f"{serve_url}/v1", api_key=write_key)


@sdk
def test_the_sdk_creates_reads_replaces_and_deletes_a_conversation(client, api):
    created = client.conversations.create(
        metadata={"topic": "billing", "tier": "pro"},
        items=[
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        ],
    )
    assert created.object == "conversation" and created.id.startswith("conv_") and len(created.id) == 37
    assert isinstance(created.created_at, int) and created.metadata == {"topic": "billing", "tier": "pro"}
    assert client.conversations.retrieve(created.id) == created

    updated = client.conversations.update(created.id, metadata={"topic": "refund", "lang": "en"})

    assert updated.metadata == {"topic": "refund", "lang": "en"}  # replaced: "tier" is gone
    stored = canonical(api, thread_of(created.id))
    assert stored["metadata"] == {"topic": "refund", "lang": "en"}
    assert stored["messageCount"] == 2 and stored["version"] == 4
    events = api.get(url(stored["id"], "/history")).json()["results"]
    assert events[0]["changes"]["metadata"] == {
        "lang": {"from": None, "to": "en"},
        "tier": {"from": "pro", "to": None},
        "topic": {"from": "billing", "to": "refund"},
    }
    deleted = client.conversations.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "conversation.deleted", True)
    with pytest.raises(openai.NotFoundError) as error:
        client.conversations.retrieve(created.id)
    assert error.value.status_code == 404 and error.value.type == "invalid_request_error"


@sdk
def test_the_canonical_api_shows_the_same_thread_and_its_messages_as_items(client, api, org):
    thread = thread_create(org=org, actor=ACTOR, data={"title": "Support", "metadata": {"plan": ["a", "b"]}})
    message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": "first"}, actor=ACTOR)

    got = client.conversations.retrieve(conv(thread))
    assert got.created_at == int(thread.created_at.timestamp())
    assert got.metadata == {"plan": '["a","b"]'}  # a list made through another door reads as JSON text

    added = client.conversations.items.create(conv(thread), items=[{"role": "assistant", "content": "second"}])
    assert [i.content[0].text for i in added.data] == ["second"]
    assert added.data[0].content[0].type == "output_text" and added.data[0].content[0].annotations == []
    api.post(url(thread, "/messages"), {"role": "user", "content": "third"})

    items = client.conversations.items.list(conv(thread), order="asc")
    assert [(i.role, i.content[0].text) for i in items] == [
        ("user", "first"),
        ("assistant", "second"),
        ("user", "third"),
    ]
    first = items.data[0]
    assert first.type == "message" and first.status == "completed" and first.content[0].type == "input_text"
    assert first.id == f"msg_{Message.objects.get(content='first').pk.hex}"
    assert client.conversations.items.retrieve(first.id, conversation_id=conv(thread)) == first


@sdk
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_auto_pagination_walks_every_page_in_either_order(client, org, order):
    thread = thread_create(org=org, actor=ACTOR, data={})
    for n in range(7):
        message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": f"m{n}"}, actor=ACTOR)

    page = client.conversations.items.list(conv(thread), limit=2, order=order)
    texts = [item.content[0].text for item in page]  # iterating a page follows `after` to the end

    expected = [f"m{n}" for n in range(7)]
    assert texts == (expected if order == "asc" else expected[::-1])
    assert len(page.data) == 2 and page.has_more is True
    assert [item.content[0].text for item in client.conversations.items.list(conv(thread))] == expected[::-1]


@sdk
def test_deleting_an_item_answers_the_conversation_and_the_thread_counts_one_less(client, api, org):
    thread = thread_create(org=org, actor=ACTOR, data={"metadata": {"k": "v"}})
    items = client.conversations.items.create(
        conv(thread), items=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    ).data

    answer = client.conversations.items.delete(items[0].id, conversation_id=conv(thread))

    assert (answer.id, answer.object, answer.metadata) == (conv(thread), "conversation", {"k": "v"})
    assert [i.id for i in client.conversations.items.list(conv(thread))] == [items[1].id]
    assert canonical(api, thread.pk)["messageCount"] == 1
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(items[0].id, conversation_id=conv(thread))


@sdk
def test_the_limits_hold_at_each_bound_and_refuse_past_it_with_openais_codes(client, org):
    conversation = client.conversations.create()
    at_bounds = {f"k{i}": "v" for i in range(15)} | {"k" * 64: "x" * 512}
    assert client.conversations.update(conversation.id, metadata=at_bounds).metadata == at_bounds
    refusals = [
        ({f"k{i}": "v" for i in range(17)}, "object_above_max_properties", "metadata"),
        ({"k" * 65: "v"}, "property_name_above_max_length", f"metadata.{'k' * 65}"),
        ({"k": "x" * 513}, "string_above_max_length", "metadata.k"),
        ({"k": 1}, "invalid_type", "metadata.k"),
    ]
    for metadata, code, param in refusals:
        with pytest.raises(openai.BadRequestError) as error:
            client.conversations.update(conversation.id, metadata=metadata)
        assert (error.value.code, error.value.param, error.value.type) == (code, param, "invalid_request_error")
    assert client.conversations.retrieve(conversation.id).metadata == at_bounds

    twenty = [{"role": "user", "content": str(n)} for n in range(20)]
    assert len(client.conversations.items.create(conversation.id, items=twenty).data) == 20
    with pytest.raises(openai.BadRequestError) as error:
        client.conversations.items.create(conversation.id, items=[*twenty, twenty[0]])
    assert (error.value.param, error.value.code) == ("items", "array_above_max_length")
    with pytest.raises(openai.BadRequestError) as error:
        client.conversations.create(items=[*twenty, twenty[0]])
    assert error.value.param == "items"
    assert len(client.conversations.items.list(conversation.id, limit=100).data) == 20
    for limit, code in ((101, "integer_above_max_value"), (0, "integer_below_min_value")):
        with pytest.raises(openai.BadRequestError) as error:
            client.conversations.items.list(conversation.id, limit=limit)
        assert (error.value.param, error.value.code) == ("limit", code)
    assert Thread.objects.count() == 1 and Message.objects.count() == 20


@sdk
def test_tenancy_read_keys_and_bad_keys(serve_url, client, org, other_key, read_key):
    conversation = client.conversations.create(metadata={"k": "v"}, items=[{"role": "user", "content": "x"}])
    item_id = client.conversations.items.list(conversation.id).data[0].id
    outsider = OpenAI(base_url=f"{serve_url}/v1", api_key=other_key)
    for call in (
        lambda: outsider.conversations.retrieve(conversation.id),
        lambda: outsider.conversations.update(conversation.id, metadata={}),
        lambda: outsider.conversations.delete(conversation.id),
        lambda: outsider.conversations.items.list(conversation.id),
        lambda: outsider.conversations.items.create(conversation.id, items=[{"role": "user", "content": "y"}]),
        lambda: outsider.conversations.items.retrieve(item_id, conversation_id=conversation.id),
        lambda: outsider.conversations.items.delete(item_id, conversation_id=conversation.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    reader = OpenAI(base_url=f"{serve_url}/v1", api_key=read_key)
    assert reader.conversations.retrieve(conversation.id).metadata == {"k": "v"}
    assert len(reader.conversations.items.list(conversation.id).data) == 1
    for call in (
        lambda: reader.conversations.create(),
        lambda: reader.conversations.update(conversation.id, metadata={}),
        lambda: reader.conversations.items.create(conversation.id, items=[{"role": "user", "content": "y"}]),
        lambda: reader.conversations.items.delete(item_id, conversation_id=conversation.id),
        lambda: reader.conversations.delete(conversation.id),
    ):
        with pytest.raises(openai.PermissionDeniedError):
            call()
    with pytest.raises(openai.AuthenticationError) as error:
        OpenAI(base_url=f"{serve_url}/v1", api_key="tk_not-a-key").conversations.retrieve(conversation.id)
    assert error.value.code == "invalid_api_key"
    assert Thread.objects.get().version == 2 and Message.objects.count() == 1


# --- the wire, through the test client --------------------------------------------------------

wire = pytest.mark.django_db


@wire
def test_an_unknown_or_malformed_or_foreign_id_is_404_in_openais_envelope(api, outsider, thread):
    for path in (
        f"{CONVERSATIONS}/conv_{uuid.uuid4().hex}",
        f"{CONVERSATIONS}/{thread.pk}",
        f"{CONVERSATIONS}/conv_{thread.pk.hex.upper()}",
        f"{CONVERSATIONS}/thread_abc",
    ):
        error = envelope(api.get(path), 404, None)
        assert error["type"] == "invalid_request_error" and "not found" in error["message"]
    envelope(outsider.get(f"{CONVERSATIONS}/{conv(thread)}"), 404, None)
    error = envelope(api.get(f"{CONVERSATIONS}/{conv(thread)}/items/msg_{uuid.uuid4().hex}"), 404, None)
    assert error["message"].startswith("Item with id")


@wire
def test_a_list_answers_openais_list_shape(api, org):
    thread = thread_create(org=org, actor=ACTOR, data={}, messages=[{"role": "user", "content": "a"}])
    empty = thread_create(org=org, actor=ACTOR, data={})

    body = api.get(f"{CONVERSATIONS}/{conv(thread)}/items").json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
    assert body["object"] == "list" and body["has_more"] is False
    assert body["first_id"] == body["last_id"] == body["data"][0]["id"]
    assert api.get(f"{CONVERSATIONS}/{conv(empty)}/items").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@wire
@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            {"items": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
            "unknown_parameter",
            "items[0].call_id",
        ),
        ({"items": [{"type": "reasoning", "role": "user", "content": "x"}]}, "invalid_value", "items[0].type"),
        ({"items": [{"role": "critic", "content": "x"}]}, "invalid_value", "items[0].role"),
        (
            {"items": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "invalid_value",
            "items[0].content[0].type",
        ),
        (
            {"items": [{"role": "user", "content": [{"type": "input_text", "text": "a"}] * 2}]},
            "array_above_max_length",
            "items[0].content",
        ),
        ({"items": [{"role": "user", "content": "x" * 100_001}]}, "string_above_max_length", "items[0].content"),
        ({"items": "hello"}, "invalid_type", "items"),
        ({"metadata": {"k": ["a"]}}, "invalid_type", "metadata.k"),
        ({"title": "x"}, "unknown_parameter", "title"),
    ],
)
def test_a_refused_create_is_400_and_writes_nothing(api, body, code, param):
    envelope(api.post(CONVERSATIONS, body), 400, code, param)
    assert Thread.objects.count() == 0 and Event.objects.count() == 0


@wire
def test_update_requires_metadata_and_null_clears_it(api, thread):
    envelope(api.post(f"{CONVERSATIONS}/{conv(thread)}", {}), 400, "missing_required_parameter", "metadata")

    response = api.post(f"{CONVERSATIONS}/{conv(thread)}", {"metadata": None})

    assert response.status_code == 200 and response.json()["metadata"] == {}
    assert canonical(api, thread.pk)["metadata"] == {}


@wire
def test_an_unchanged_replacement_writes_no_event(api, thread):
    response = api.post(f"{CONVERSATIONS}/{conv(thread)}", {"metadata": {"a": "1"}})

    assert response.status_code == 200
    assert Thread.objects.get(pk=thread.pk).version == 1


@wire
def test_no_credentials_is_401_and_a_chat_token_is_refused(thread):
    envelope(Api().get(f"{CONVERSATIONS}/{conv(thread)}"), 401, None)
    envelope(chat_api(thread).get(f"{CONVERSATIONS}/{conv(thread)}"), 403, "permission_denied")


@wire
def test_a_user_token_writes_as_the_user(member_api, api, thread):
    assert (
        member_api.post(
            f"{CONVERSATIONS}/{conv(thread)}/items", {"items": [{"role": "user", "content": "x"}]}
        ).status_code
        == 200
    )
    assert api.get(url(thread, "/history")).json()["results"][0]["actor"]["type"] == "user"


@wire
def test_a_bad_after_or_order_is_400(api, thread, org):
    other = thread_create(org=org, actor=ACTOR, data={}, messages=[{"role": "user", "content": "x"}])
    foreign = f"msg_{Message.objects.get(thread=other).pk.hex}"
    items = f"{CONVERSATIONS}/{conv(thread)}/items"
    envelope(api.get(items, {"after": foreign}), 400, "invalid_value", "after")
    envelope(api.get(items, {"after": "nope"}), 400, "invalid_value", "after")
    envelope(api.get(items, {"order": "up"}), 400, "invalid_value", "order")
    envelope(api.get(items, {"limit": "ten"}), 400, "invalid_type", "limit")


@sdk
def test_the_reference_snippet_runs_as_written(serve_url, write_key, capsys):
    run_snippet("from openai import OpenAI", serve_url, write_key)
    assert capsys.readouterr().out.splitlines() == ["user Where is my invoice?", "assistant Here it is."]
    assert Thread.objects.count() == 0  # it deletes what it made


def run_snippet(marker: str, serve_url: str, key: str) -> None:
    """The docs/api.md Python block that holds ``marker``, against the server and with the key: the
    block reads them from $BASE and $KEY, as the docs' examples do (tests/docs_support.py)."""
    import os

    from .docs_support import ROOT, parse

    block = next(b for b in parse(ROOT / "docs" / "api.md").blocks if b.lang == "python" and marker in b.code)
    saved = {name: os.environ.get(name) for name in ("BASE", "KEY")}
    os.environ.update(BASE=serve_url, KEY=key)
    try:
        exec(compile(block.code, "docs/api.md", "exec"), {"__name__": "snippet"})  # noqa: S102 - our own documentation
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@sdk
def test_concurrent_replacements_and_item_writes_lose_nothing_and_never_mix(serve_url, write_key, api, org):
    """Eight clients at once: each replaces the metadata with a map of its own, adds an item and
    deletes one of the first items. The stored map is exactly one client's (a replacement is one
    write under the row lock), and the count, the items and the history agree."""
    from concurrent.futures import ThreadPoolExecutor

    thread = thread_create(
        org=org,
        actor=ACTOR,
        data={"metadata": {"start": "x"}},
        messages=[{"role": "user", "content": f"first {n}"} for n in range(8)],
    )
    first = [f"msg_{m.pk.hex}" for m in Message.objects.filter(thread=thread).order_by("created_at", "id")]

    def client_run(n: int) -> None:
        client = OpenAI(base_url=f"{serve_url}/v1", api_key=write_key, max_retries=0)
        client.conversations.update(conv(thread), metadata={f"writer{n}": "yes", "who": str(n)})
        client.conversations.items.create(conv(thread), items=[{"role": "user", "content": f"added {n}"}])
        client.conversations.items.delete(first[n], conversation_id=conv(thread))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client_run, range(8)))

    stored = canonical(api, thread.pk)
    who = stored["metadata"]["who"]
    assert stored["metadata"] == {f"writer{who}": "yes", "who": who}
    texts = [m.content for m in Message.objects.filter(thread=thread)]
    assert sorted(texts) == sorted(f"added {n}" for n in range(8))
    assert stored["messageCount"] == 8 and stored["version"] == 1 + 8 + 3 * 8
    versions = list(Event.objects.filter(thread_id=thread.pk).order_by("version").values_list("version", flat=True))
    assert versions == list(range(1, stored["version"] + 1))
