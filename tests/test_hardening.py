"""Hostile input: nothing outside the contract's writable set can be written, and malformed or
oversized bodies and queries are each answered quickly with a 4xx envelope, never a 500.

Duplicate JSON keys are refused (400 ``invalid_json``): RFC 8259 leaves their meaning open, so a
proxy or client library and this service could disagree on which value a request carried.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from threads.models import Event, Message, Thread

from .conftest import url

pytestmark = pytest.mark.django_db

QUICK = 2.0  # seconds; every hostile request must be answered within this
MAX_BODY = 256 * 1024
READ_ONLY = {
    "object": "thread",
    "organizationId": "00000000-0000-0000-0000-000000000001",
    "messageCount": 99,
    "lastActivityAt": "2020-01-01T00:00:00Z",
    "createdAt": "2020-01-01T00:00:00Z",
    "updatedAt": "2020-01-01T00:00:00Z",
    "version": 42,
}
# Model attribute names and other guesses at internal fields are unknown fields, not aliases.
INTERNAL = {
    "organization": "x",
    "organization_id": "x",
    "message_count": 5,
    "is_archived": True,
    "created_at": "2020-01-01T00:00:00Z",
    "pk": "x",
    "deleted": True,
    "actor": "x",
}


def snapshot(thread: Thread) -> tuple:
    thread.refresh_from_db()
    return (
        thread.title,
        thread.metadata,
        thread.variables,
        thread.tags,
        thread.version,
        thread.updated_at,
        thread.message_count,
        thread.organization_id,
        thread.created_at,
        Event.objects.filter(thread_id=thread.pk).count(),
    )


def raw(api, method: str, path: str, body: bytes, content_type: str = "application/json", **extra):
    """Send ``body`` byte for byte, timed."""
    started = time.monotonic()
    response = getattr(api.client, method)(path, data=body, content_type=content_type, **extra)
    return response, time.monotonic() - started


def refused(response, elapsed, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert elapsed < QUICK, f"answered in {elapsed:.2f}s"
    return error


# --- mass assignment -------------------------------------------------------------------------


@pytest.mark.parametrize("field", [*READ_ONLY, "id"])
def test_a_patch_naming_a_read_only_field_is_400_and_changes_nothing(api, thread, field):
    before = snapshot(thread)
    value = READ_ONLY.get(field, "00000000-0000-0000-0000-000000000002")
    response = api.patch(url(thread), {"title": "sneaky", "metadata": {"x": "1"}, field: value})
    error = refused(response, 0, 400, "invalid_parameters")
    assert error["param"] == field
    assert snapshot(thread) == before


@pytest.mark.parametrize("field", [*READ_ONLY, *INTERNAL])
def test_a_create_naming_a_read_only_or_internal_field_is_400_and_creates_nothing(api, field):
    value = READ_ONLY.get(field, INTERNAL.get(field))
    response = api.post("/api/v1/threads", {"title": "sneaky", field: value})
    assert refused(response, 0, 400, "invalid_parameters")["param"] == field
    assert Thread.objects.count() == 0 and Event.objects.count() == 0


@pytest.mark.parametrize("field", INTERNAL)
def test_a_patch_naming_an_internal_attribute_is_400_and_changes_nothing(api, thread, field):
    before = snapshot(thread)
    response = api.patch(url(thread), {"title": "sneaky", field: INTERNAL[field]})
    assert refused(response, 0, 400, "invalid_parameters")["param"] == field
    assert snapshot(thread) == before


def test_a_message_cannot_set_its_id_thread_or_time(api, thread):
    for field, value in {"id": 1, "threadId": "x", "thread": "x", "createdAt": "2020-01-01T00:00:00Z"}.items():
        response = api.post(url(thread, "/messages"), {"role": "user", "content": "hi", field: value})
        assert refused(response, 0, 400, "invalid_parameters")["param"] == field
    assert Message.objects.count() == 0


def test_a_chat_token_body_cannot_reach_other_fields(api, thread):
    before = snapshot(thread)
    token = api.post(url(thread, "/chat-token"), {}).json()["token"]
    api.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for field, value in {"title": "x", "version": 9, "organizationId": "x", "tags": ["x"]}.items():
        response = api.patch(url(thread), {"metadata": {"x": "1"}, field: value})
        assert response.status_code == 403, response.content
    assert snapshot(thread) == before


def test_a_read_only_field_is_refused_even_with_its_current_value(api, thread):
    body = api.get(url(thread)).json()
    before = snapshot(thread)
    response = api.patch(url(thread), {"version": body["version"], "createdAt": body["createdAt"]})
    refused(response, 0, 400, "invalid_parameters")
    assert snapshot(thread) == before


# --- malformed JSON --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1_000, 10_000, 100_000])
def test_deeply_nested_json_is_400_invalid_json(api, thread, depth):
    before = snapshot(thread)
    for body in ("[" * depth + "]" * depth, '{"metadata": {"a": ' + "[" * depth + "]" * depth + "}}"):
        response, elapsed = raw(api, "patch", url(thread), body.encode())
        refused(response, elapsed, 400, "invalid_json")
    assert snapshot(thread) == before


def test_nesting_within_the_limit_reaches_the_usual_checks(api, thread):
    body = '{"metadata": {"a": ' + "[" * 20 + "]" * 20 + "}}"
    response, elapsed = raw(api, "patch", url(thread), body.encode())
    refused(response, elapsed, 400, "invalid_parameters")


def test_deep_nesting_is_refused_on_every_json_route(api, thread):
    body = ("[" * 10_000 + "]" * 10_000).encode()
    for path in ["/api/v1/threads", url(thread, "/messages"), url(thread, "/chat-token"), "/api/v1/auth/token"]:
        response, elapsed = raw(api, "post", path, body)
        refused(response, elapsed, 400, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"title": "\xff\xfe\xfd"}',
        b'\xef\xbb\xbf{"title": "bom"}',  # a UTF-8 byte-order mark is not JSON
        b'{"title": "\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
    ],
    ids=["latin1", "garbage", "bom", "encoded-surrogate"],
)
def test_a_body_that_is_not_utf8_is_400_invalid_json(api, thread, body):
    before = snapshot(thread)
    response, elapsed = raw(api, "patch", url(thread), body)
    refused(response, elapsed, 400, "invalid_json")
    assert snapshot(thread) == before


@pytest.mark.parametrize(
    "body",
    [
        '{"title": "\\ud800"}',
        '{"metadata": {"\\udfff": "x"}}',
        '{"tags": ["a\\ud83d"]}',
        '{"variables": {"v": "\\udc00\\ud800"}}',
    ],
)
def test_an_unpaired_surrogate_escape_is_400_invalid_json(api, thread, body):
    """Python decodes ``"\\ud800"`` to a string that no database driver can encode."""
    before = snapshot(thread)
    response, elapsed = raw(api, "patch", url(thread), body.encode())
    refused(response, elapsed, 400, "invalid_json")
    assert snapshot(thread) == before


def test_a_paired_surrogate_escape_is_an_ordinary_character(api, thread):
    response, _ = raw(api, "patch", url(thread), b'{"title": "smile \\ud83d\\ude00"}')
    assert response.status_code == 200 and response.json()["title"] == "smile \U0001f600"


def test_a_raw_nul_byte_in_the_body_is_400_invalid_json(api, thread):
    response, elapsed = raw(api, "patch", url(thread), b'{"title": "a\x00b"}')
    refused(response, elapsed, 400, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [
        {"title": "a\u0000b"},
        {"metadata": {"k\u0000": "v"}},
        {"metadata": {"k": "v\u0000"}},
        {"metadata": {"k": ["ok", "v\u0000"]}},
        {"variables": {"k": "\u0000"}},
        {"tags": ["\u0000"]},
        {"addTags": ["a\u0000"]},
        {"projectId": "\u0000"},
    ],
)
def test_an_escaped_nul_anywhere_is_400_invalid_parameters(api, thread, body):
    before = snapshot(thread)
    response, elapsed = raw(api, "patch", url(thread), json.dumps(body).encode())
    refused(response, elapsed, 400, "invalid_parameters")
    assert snapshot(thread) == before


def test_a_nul_in_a_message_or_query_is_400(api, thread):
    response, elapsed = raw(api, "post", url(thread, "/messages"), b'{"role": "user", "content": "\\u0000"}')
    refused(response, elapsed, 400, "invalid_parameters")
    for query in ({"search": "a\x00"}, {"tag": "\x00"}, {"metadata.k\x00": "v"}, {"projectId": "\x00"}):
        refused(api.get("/api/v1/threads", query), 0, 400, "invalid_parameters")


@pytest.mark.parametrize(
    "body",
    ['{"title": "a", "title": "b"}', '{"metadata": {"k": "1", "k": "2"}}', '{"variables": {"v": "1", "v": "1"}}'],
)
def test_duplicate_keys_are_400_invalid_json_and_change_nothing(api, thread, body):
    before = snapshot(thread)
    response, elapsed = raw(api, "patch", url(thread), body.encode())
    error = refused(response, elapsed, 400, "invalid_json")
    assert "duplicate key" in error["message"]
    assert snapshot(thread) == before


@pytest.mark.parametrize("body", ["NaN", '{"title": Infinity}', '{"metadata": {"a": -Infinity}}', "{", "{}x"])
def test_non_json_and_non_standard_constants_are_400_invalid_json(api, thread, body):
    response, elapsed = raw(api, "patch", url(thread), body.encode())
    refused(response, elapsed, 400, "invalid_json")


def test_a_huge_number_is_400_not_500(api, thread):
    response, elapsed = raw(api, "patch", url(thread), b'{"title": ' + b"9" * 10_000 + b"}")
    assert response.status_code == 400 and elapsed < QUICK


def test_an_empty_body_is_the_empty_patch(api, thread):
    response, _ = raw(api, "patch", url(thread), b"")
    assert response.status_code == 200 and response.json()["version"] == 1


# --- size ------------------------------------------------------------------------------------


def test_a_body_just_under_256_kib_is_accepted(api, thread):
    content = "€" * 87_000  # 3 bytes each in UTF-8: under 100,000 characters, near 256 KiB
    content += "a" * (MAX_BODY - len(json.dumps({"role": "user", "content": content}, ensure_ascii=False).encode()))
    body = json.dumps({"role": "user", "content": content}, ensure_ascii=False).encode()
    assert len(body) == MAX_BODY
    response, elapsed = raw(api, "post", url(thread, "/messages"), body)
    assert response.status_code == 201, response.content[:300]
    assert Message.objects.get().content == content


def test_a_body_just_over_256_kib_is_413_and_stores_nothing(api, thread):
    before = snapshot(thread)
    body = json.dumps({"title": "x", "variables": {"v": "a" * (MAX_BODY - 37)}}).encode()
    assert len(body) == MAX_BODY + 1
    response, elapsed = raw(api, "patch", url(thread), body)
    refused(response, elapsed, 413, "payload_too_large")
    assert snapshot(thread) == before


def test_a_huge_body_is_413_on_every_route(api, thread):
    body = b'{"a": "' + b"x" * (4 * MAX_BODY) + b'"}'
    for method, path in [
        ("post", "/api/v1/threads"),
        ("patch", url(thread)),
        ("post", url(thread, "/messages")),
        ("post", "/api/v1/auth/token"),
    ]:
        response, elapsed = raw(api, method, path, body)
        refused(response, elapsed, 413, "payload_too_large")


def test_a_chunked_body_is_411_not_taken_for_an_empty_one(api, thread):
    """Django reads Content-Length bytes only: a chunked PATCH would be a silent no-op 200."""
    before = snapshot(thread)
    response = api.client.generic(
        "PATCH",
        url(thread),
        b'{"title": "chunked"}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    refused(response, 0, 411, "length_required")
    assert snapshot(thread) == before


# --- long keys, long lists -------------------------------------------------------------------


def test_very_long_keys_are_refused(api, thread):
    before = snapshot(thread)
    long_key = "k" * 100_000
    cases = [
        ({"metadata": {long_key: "v"}}, 422, "metadata_key_invalid"),
        ({"variables": {long_key: "v"}}, 422, "variables_key_invalid"),
        ({long_key: "v"}, 400, "invalid_parameters"),
    ]
    for body, status, code in cases:
        response, elapsed = raw(api, "patch", url(thread), json.dumps(body).encode())
        refused(response, elapsed, status, code)
    assert snapshot(thread) == before


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"tags": [f"t{i}" for i in range(10_000)]}, 422, "tags_invalid"),
        ({"tags": ["same"] * 10_000}, 200, None),
        ({"addTags": [f"t{i}" for i in range(10_000)]}, 422, "tags_invalid"),
        ({"removeTags": [f"t{i}" for i in range(10_000)]}, 200, None),
        ({"tags": [f"t{i}" for i in range(10_000)], "removeTags": [f"t{i}" for i in range(10_000)]}, 200, None),
        ({"metadata": {"list": [f"v{i}" for i in range(10_000)]}}, 422, "metadata_value_too_long"),
        ({"metadata": {f"k{i}": "v" for i in range(10_000)}}, 422, "metadata_limit_exceeded"),
        ({"variables": {f"k{i}": "v" for i in range(10_000)}}, 422, "variables_limit_exceeded"),
        ({"tags": [[]] * 10_000}, 400, "invalid_parameters"),
    ],
    ids=[
        "tags",
        "same-tag",
        "addTags",
        "removeTags",
        "tags-and-removeTags",
        "metadata-list",
        "metadata-keys",
        "variables-keys",
        "tags-of-lists",
    ],
)
def test_ten_thousand_element_lists_and_maps_are_answered_quickly(api, thread, body, status, code):
    response, elapsed = raw(api, "patch", url(thread), json.dumps(body).encode())
    assert elapsed < QUICK, f"answered in {elapsed:.2f}s"
    assert response.status_code == status, response.content[:300]
    if code:
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("field", ["tags", "addTags", "removeTags"])
def test_the_longest_list_of_tags_a_body_can_hold_is_answered_quickly(api, thread, field):
    tags = [f"{i:x}" for i in range(32_000)]  # distinct short tags filling most of 256 KiB
    body = json.dumps({field: tags}, separators=(",", ":")).encode()
    assert MAX_BODY // 2 < len(body) <= MAX_BODY
    response, elapsed = raw(api, "patch", url(thread), body)
    assert elapsed < QUICK, f"answered in {elapsed:.2f}s"
    assert response.status_code == (200 if field == "removeTags" else 422)


@pytest.mark.parametrize("count", [33, 900, 5_000])
def test_many_repeated_query_parameters_are_400_quickly(api, thread, count):
    """A thread has at most 32 tags and 16 metadata keys: a filter on more can never match, and
    each one is a clause of the query (SQLite refuses an expression tree 1,000 deep)."""
    for name in ("tag", "metadata.k", "search"):
        pairs = [(f"metadata.k{i}" if name == "metadata.k" else name, f"v{i}") for i in range(count)]
        started = time.monotonic()
        response = api.client.get(f"/api/v1/threads?{urlencode(pairs)}")
        if name == "search" and count < 1_000:
            assert response.status_code == 200  # the last value counts, as for any single parameter
            continue
        refused(response, time.monotonic() - started, 400, "invalid_parameters")


def test_a_filter_on_many_tags_or_metadata_keys_is_answered(api, thread):
    for name, count in (("tag", 32), ("metadata.k", 16)):
        query = urlencode([(name if name == "tag" else f"metadata.k{i}", f"v{i}") for i in range(count)])
        response = api.client.get(f"/api/v1/threads?{query}")
        assert response.status_code == 200 and response.json()["results"] == []
