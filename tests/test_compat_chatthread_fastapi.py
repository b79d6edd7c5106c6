"""Seed 002 against FastAPI itself: a FastAPI app built here from the seed's schema and this
service's ``PATCH /api/chat/threads/{id}`` get the same bodies and must answer the same status and
the same ``detail`` (every key of every entry); every thread this surface answers validates
against the seed's ``ChatThread``.

The seed's backend is this service: what the reference app's pydantic model accepts is handed to
``services.thread_update`` (in a savepoint rolled back), and a value the rules refuse is expected
as the documented 422 entry typed by the service's code. The only body on which the two may differ
is one naming an unknown field: this surface refuses it as a FastAPI app with ``extra="forbid"``
does, which is the reference everything is compared with; a default model (which ignores unknown
fields) must agree on every other body.

(No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations as objects.)
"""

import json
from datetime import datetime
from typing import Any

import pytest
from django.db import transaction
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from threads import services
from threads.errors import ThreadError

from .conftest import ACTOR

pytestmark = pytest.mark.django_db

FIELDS = frozenset({"title", "tags", "isArchived"})


# The seed's models, written from its document (not imported from the adapter under test).
class ThreadUpdateRequest(BaseModel):
    title: str | None = None
    tags: list[str] | None = None
    isArchived: bool | None = None


class ForbiddingThreadUpdateRequest(ThreadUpdateRequest):
    model_config = ConfigDict(extra="forbid")


class ChatThread(BaseModel):
    """Its required fields and the optional ones this surface fills, with the seed's types."""

    model_config = ConfigDict(extra="forbid", strict=True)

    threadId: str
    title: str
    projectId: str
    createdAt: datetime
    messageCount: int
    tags: list[str] = []
    uuid: str | None = None
    version: str | None = None
    userId: str | None = None
    modifiedAt: datetime | None = None
    lastMessageAt: datetime | None = None
    isActive: bool | None = None
    isArchived: bool | None = None
    isPinned: bool | None = None


class Reference:
    """A FastAPI app serving the seed's route with ``model`` as its body, and its backend."""

    def __init__(self, model: type[ThreadUpdateRequest]) -> None:
        self.accepted: list[ThreadUpdateRequest] = []
        app = FastAPI()

        @app.patch("/api/chat/threads/{thread_id}")
        def update_thread(thread_id: str, request_data: model) -> None:
            self.accepted.append(request_data)

        self.client = TestClient(app)

    def answer(self, thread, body: bytes, content_type: str) -> tuple[int, Any]:
        response = self.client.patch(path(thread), content=body, headers=headers(content_type))
        if response.status_code != 200:
            return response.status_code, response.json()
        update = self.accepted.pop()
        with transaction.atomic():
            try:
                services.thread_update(
                    org=thread.organization,
                    thread_id=thread.pk,
                    patch=update.model_dump(exclude_none=True),
                    actor=ACTOR,
                    fields=FIELDS,
                )
            except ThreadError as error:
                field = error.param.split(".")[0]
                entry = {"type": error.code, "loc": ["body", field], "msg": error.message}
                return 422, {"detail": [{**entry, "input": json.loads(body)[field]}]}
            finally:
                transaction.set_rollback(True)
        return 200, None


FORBIDDING = Reference(ForbiddingThreadUpdateRequest)
DEFAULT = Reference(ThreadUpdateRequest)


def path(thread) -> str:
    return f"/api/chat/threads/{thread.pk}"


def headers(content_type: str) -> dict[str, str]:
    return {"content-type": content_type} if content_type else {}


def names_an_unknown_field(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and not set(data) <= FIELDS


def assert_answers_as_fastapi(api, thread, body: bytes, content_type: str = "application/json") -> None:
    response = api.client.generic("PATCH", path(thread), body, content_type)
    ours = response.json()
    if response.status_code == 200:
        ChatThread.model_validate_json(response.content)
        ours = None
    assert (response.status_code, ours) == FORBIDDING.answer(thread, body, content_type)
    if not names_an_unknown_field(body):
        assert (response.status_code, ours) == DEFAULT.answer(thread, body, content_type)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


BODIES = [
    encoded({"title": "Renamed", "tags": ["Billing", " urgent "], "isArchived": True}),
    encoded({}),
    encoded({"title": None, "tags": None, "isArchived": None}),
    encoded({"title": ""}),
    encoded({"tags": []}),
    *(encoded({"isArchived": value}) for value in ("yes", "true", "off", 1, 0, 1.0, False)),
    *(encoded({"isArchived": value}) for value in (2, "maybe", 0.5, [], {})),
    encoded({"title": 5}),
    encoded({"title": ["a"]}),
    encoded({"tags": "billing"}),
    encoded({"tags": ["ok", 7, None]}),
    encoded({"title": 5, "tags": ["ok", 7], "isArchived": "maybe"}),
    b"{bad json",
    b'{"title": "a",}',
    b"",
    b"null",
    b'["title"]',
    b'"title"',
    b"42",
    b'{"title": "a", "title": 5}',
    encoded({"title": "x", "metadata": {"a": "2"}}),
    encoded({"is_archived": True, "title": 3}),
    encoded({"title": "x" * 257}),
    encoded({"title": "a\x00b"}),
    encoded({"tags": ["x" * 65]}),
    encoded({"tags": ["   "]}),
    encoded({"tags": [f"t{i}" for i in range(33)]}),
    b'{"title": "caf\xe9"}',
    b'{"title": ' + b"9" * 5_000 + b"}",
    b"[" * 100_000,
]


@pytest.mark.parametrize("body", BODIES, ids=[body[:40].decode(errors="replace") for body in BODIES])
def test_each_listed_body_is_answered_as_fastapi_answers_it(api, thread, body):
    assert_answers_as_fastapi(api, thread, body)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json", "text/plain", ""]
)
@pytest.mark.parametrize("body", [b'{"title": "x"}', b"title=x", b"{", b""])
def test_each_media_type_is_read_as_fastapi_reads_it(api, thread, body, content_type):
    assert_answers_as_fastapi(api, thread, body, content_type)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=6,
)
LAX_BOOLEANS = st.sampled_from([True, False, "yes", "no", "true", "False", "on", "off", "1", "0", "t", "n", 1, 0, 1.0])
TAG = st.text(max_size=70) | st.from_regex(r"[a-z]{1,3}", fullmatch=True)
VALUES = {
    "title": st.text() | st.text(min_size=250, max_size=260) | JSON,
    "tags": st.lists(TAG, max_size=40) | st.lists(TAG | JSON, max_size=3) | JSON,
    "isArchived": LAX_BOOLEANS
    | st.sampled_from(["maybe", "", "2"])
    | st.integers(-2, 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON,
}
WELL_TYPED = {"title": st.text(max_size=20), "tags": st.lists(TAG, max_size=5), "isArchived": LAX_BOOLEANS}
KNOWN = st.fixed_dictionaries({}, optional=VALUES) | st.fixed_dictionaries({}, optional=WELL_TYPED)
OBJECTS = KNOWN | st.builds(
    lambda known, extra: {**extra, **known}, KNOWN, st.dictionaries(st.text(), JSON, max_size=2)
)


def is_malformed(body: bytes) -> bool:
    try:
        json.loads(body)
    except json.JSONDecodeError:
        return True
    return False


MALFORMED = (
    st.text(min_size=1).map(str.encode) | st.builds(lambda body, end: encoded(body)[:end], OBJECTS, st.integers(1, 40))
).filter(is_malformed)
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@EXAMPLES
@given(body=OBJECTS | JSON)
def test_any_json_body_is_answered_as_fastapi_answers_it(api, thread, body):
    assert_answers_as_fastapi(api, thread, encoded(body))


@EXAMPLES
@given(body=MALFORMED)
def test_any_malformed_body_is_answered_as_fastapi_answers_it(api, thread, body):
    assert_answers_as_fastapi(api, thread, body)


def assert_unreadable(api, thread, body: bytes) -> None:
    response = api.client.generic("PATCH", path(thread), body, "application/json")
    assert (response.status_code, response.json()) == (400, {"detail": "There was an error parsing the body"})


@pytest.mark.parametrize("body", [b'{"isArchived": NaN}', b'{"title": 1e400}'], ids=["nan", "overflow"])
def test_a_number_fastapi_cannot_render_in_its_422_is_a_400_here(api, thread, body):
    fastapi = TestClient(FORBIDDING.client.app, raise_server_exceptions=False)
    assert fastapi.patch(path(thread), content=body, headers=headers("application/json")).status_code == 500

    assert_unreadable(api, thread, body)


def test_an_unpaired_surrogate_that_fastapi_would_pass_on_is_a_400_here(api, thread):
    body = b'{"title": "\\ud800"}'
    assert ForbiddingThreadUpdateRequest.model_validate(json.loads(body)).title == "\ud800"

    assert_unreadable(api, thread, body)
