"""The authorization matrix: every route of every surface × every kind of caller, from one table.

A route that is served but has no row here fails ``test_every_served_route_has_a_row``, so a new
route cannot be added without deciding who may call it. For each refused write the thread, its
messages, its history and the thread count are checked unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework_simplejwt.tokens import AccessToken

from threads.api.tokens import ChatToken
from threads.keys import api_key_create
from threads.models import Event, Message, Thread
from threads.services import thread_create
from threads.webhooks.models import WebhookEndpoint
from threads.webhooks.services import endpoint_create

from .conftest import ACTOR, Api, make_user

pytestmark = pytest.mark.django_db

CALLERS = [
    "none",
    "invalid_key",
    "user_token_as_chat",
    "chat_token_as_user",
    "other_org_key",
    "read_key",
    "viewer",
    "member",
    "write_key",
    "chat_other_thread",
    "chat_this_thread",
    "chat_expired",
]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    pattern: str  # as Django's resolver spells it
    path: str  # with {id}
    body: object | None
    expect: dict  # caller -> status; missing callers use the surface's defaults
    write: bool


def canonical(name, method, pattern, path, body, ok, write, **overrides):
    """The canonical API: keys and users by scope/role, chat tokens only where allowed."""
    thread_route = "{id}" in path
    expect = {
        "none": 401,
        "invalid_key": 401,
        "chat_expired": 401,
        "other_org_key": 404 if thread_route else ok,
        "read_key": 403 if write else ok,
        "viewer": 403 if write else ok,
        "member": ok,
        "write_key": ok,
        "chat_other_thread": 403,
        "chat_this_thread": 403,
        **overrides,
    }
    # The canonical API takes both kinds of JWT: a user token works as the user it names, and a
    # chat token only as a chat token (for its own thread).
    expect["user_token_as_chat"] = expect["member"]
    expect["chat_token_as_user"] = expect["chat_this_thread"]
    return Route(name, method, pattern, path, body, expect, write)


META = {"metadata": {"k": "v"}}
MSG = {"role": "user", "content": "hi"}
ROUTES = [
    canonical("list", "get", "api/v1/threads", "/api/v1/threads", None, 200, False),
    canonical("create", "post", "api/v1/threads", "/api/v1/threads", {"title": "x"}, 201, True),
    canonical(
        "retrieve",
        "get",
        "api/v1/threads/<str:thread_id>",
        "/api/v1/threads/{id}",
        None,
        200,
        False,
        chat_this_thread=200,
    ),
    canonical(
        "update",
        "patch",
        "api/v1/threads/<str:thread_id>",
        "/api/v1/threads/{id}",
        META,
        200,
        True,
        chat_this_thread=200,
    ),
    canonical("delete", "delete", "api/v1/threads/<str:thread_id>", "/api/v1/threads/{id}", None, 204, True),
    canonical(
        "messages_list",
        "get",
        "api/v1/threads/<str:thread_id>/messages",
        "/api/v1/threads/{id}/messages",
        None,
        200,
        False,
        chat_this_thread=200,
    ),
    canonical(
        "messages_add",
        "post",
        "api/v1/threads/<str:thread_id>/messages",
        "/api/v1/threads/{id}/messages",
        MSG,
        201,
        True,
        chat_this_thread=201,
    ),
    canonical(
        "history", "get", "api/v1/threads/<str:thread_id>/history", "/api/v1/threads/{id}/history", None, 200, False
    ),
    canonical(
        "chat_token",
        "post",
        "api/v1/threads/<str:thread_id>/chat-token",
        "/api/v1/threads/{id}/chat-token",
        {},
        200,
        True,
    ),
    canonical("events", "get", "api/v1/events", "/api/v1/events", None, 200, False),
]


def chat_only(name, method, pattern, path, body, ok):
    """Seed 000: a chat token for the thread in the path, nothing else (401 for any other credential)."""
    expect = {caller: 401 for caller in CALLERS}
    expect.update(chat_this_thread=ok, chat_token_as_user=ok, chat_other_thread=403)
    return Route(name, method, pattern, path, body, expect, True)


LANGBASE_MESSAGES = [{"role": "user", "content": "hi"}]
ROUTES += [
    chat_only(
        "feather_update",
        "patch",
        "api/v1/chat/threads/<str:thread_id>",
        "/api/v1/chat/threads/{id}",
        {"metadata": {"k": "v"}},
        200,
    ),
    canonical(
        "freddy_metadata", "patch", "v1/threads/<str:thread_id>/metadata", "/v1/threads/{id}/metadata", META, 200, True
    ),
    canonical(
        "chatthread_update",
        "patch",
        "api/chat/threads/<str:thread_id>",
        "/api/chat/threads/{id}",
        {"title": "t2"},
        200,
        True,
    ),
    canonical("langbase_create", "post", "v1/threads", "/v1/threads", {"metadata": {"k": "v"}}, 200, True),
    canonical("langbase_get", "get", "v1/threads/<str:thread_id>", "/v1/threads/{id}", None, 200, False),
    canonical("langbase_update", "post", "v1/threads/<str:thread_id>", "/v1/threads/{id}", META, 200, True),
    canonical("langbase_delete", "delete", "v1/threads/<str:thread_id>", "/v1/threads/{id}", None, 200, True),
    canonical(
        "langbase_messages_list",
        "get",
        "v1/threads/<str:thread_id>/messages",
        "/v1/threads/{id}/messages",
        None,
        200,
        False,
    ),
    canonical(
        "langbase_messages_add",
        "post",
        "v1/threads/<str:thread_id>/messages",
        "/v1/threads/{id}/messages",
        LANGBASE_MESSAGES,
        200,
        True,
    ),
]
CONV = "/v1/conversations/{conv}"  # {conv}: the thread as a conversation, {item}: its message as an item
ITEMS = [{"role": "user", "content": "hi"}]
ROUTES += [
    canonical(
        "message_delete",
        "delete",
        "api/v1/threads/<str:thread_id>/messages/<str:message_id>",
        "/api/v1/threads/{id}/messages/{msg}",
        None,
        204,
        True,
    ),
    canonical("openai_create", "post", "v1/conversations", "/v1/conversations", META, 200, True),
    *[
        canonical(
            f"openai_{name}",
            method,
            "v1/conversations/<str:conversation_id>",
            CONV,
            body,
            200,
            write,
            other_org_key=404,
        )
        for name, method, body, write in (
            ("get", "get", None, False),
            ("update", "post", META, True),
            ("delete", "delete", None, True),
        )
    ],
    canonical(
        "openai_items_list",
        "get",
        "v1/conversations/<str:conversation_id>/items",
        f"{CONV}/items",
        None,
        200,
        False,
        other_org_key=404,
    ),
    canonical(
        "openai_items_create",
        "post",
        "v1/conversations/<str:conversation_id>/items",
        f"{CONV}/items",
        {"items": ITEMS},
        200,
        True,
        other_org_key=404,
    ),
    *[
        canonical(
            f"openai_item_{name}",
            method,
            "v1/conversations/<str:conversation_id>/items/<str:item_id>",
            f"{CONV}/items/{{item}}",
            None,
            200,
            write,
            other_org_key=404,
        )
        for name, method, write in (("get", "get", False), ("delete", "delete", True))
    ],
    canonical("langgraph_create", "post", "langgraph/threads", "/langgraph/threads", META, 200, True),
    # Search and count are POSTs that only read: a read key and a viewer may call them.
    canonical("langgraph_search", "post", "langgraph/threads/search", "/langgraph/threads/search", {}, 200, False),
    canonical("langgraph_count", "post", "langgraph/threads/count", "/langgraph/threads/count", {}, 200, False),
    canonical("langgraph_get", "get", "langgraph/threads/<str:thread_id>", "/langgraph/threads/{id}", None, 200, False),
    canonical(
        "langgraph_update", "patch", "langgraph/threads/<str:thread_id>", "/langgraph/threads/{id}", META, 200, True
    ),
    canonical(
        "langgraph_delete", "delete", "langgraph/threads/<str:thread_id>", "/langgraph/threads/{id}", None, 204, True
    ),
    canonical(
        "langgraph_copy",
        "post",
        "langgraph/threads/<str:thread_id>/copy",
        "/langgraph/threads/{id}/copy",
        None,
        200,
        True,
    ),
]
HOOK = {"url": "https://93.184.215.14/hooks"}
ROUTES += [  # {hook}: an endpoint of the thread's organization (another organization's key: 404)
    canonical("webhooks_list", "get", "api/v1/webhooks", "/api/v1/webhooks", None, 200, False),
    canonical("webhooks_create", "post", "api/v1/webhooks", "/api/v1/webhooks", HOOK, 201, True),
    canonical(
        "webhooks_get",
        "get",
        "api/v1/webhooks/<str:webhook_id>",
        "/api/v1/webhooks/{hook}",
        None,
        200,
        False,
        other_org_key=404,
    ),
    canonical(
        "webhooks_update",
        "patch",
        "api/v1/webhooks/<str:webhook_id>",
        "/api/v1/webhooks/{hook}",
        {"description": "x"},
        200,
        True,
        other_org_key=404,
    ),
    canonical(
        "webhooks_delete",
        "delete",
        "api/v1/webhooks/<str:webhook_id>",
        "/api/v1/webhooks/{hook}",
        None,
        204,
        True,
        other_org_key=404,
    ),
    canonical(
        "webhooks_rotate_secret",
        "post",
        "api/v1/webhooks/<str:webhook_id>/rotate-secret",
        "/api/v1/webhooks/{hook}/rotate-secret",
        None,
        200,
        True,
        other_org_key=404,
    ),
    canonical(
        "webhooks_deliveries",
        "get",
        "api/v1/webhooks/<str:webhook_id>/deliveries",
        "/api/v1/webhooks/{hook}/deliveries",
        None,
        200,
        False,
        other_org_key=404,
    ),
]
# Routes that take no caller credentials, or belong to the session-based pages.
EXEMPT_PREFIXES = ("admin/", "ops/", "accounts/", "api/schema/", "api/docs/", "api/v1/auth/token", "static/")


def _served_patterns(resolver=None, prefix="") -> set[str]:
    out: set[str] = set()
    for entry in (resolver or get_resolver()).url_patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if not text.startswith(("admin/",)):
                out |= _served_patterns(entry, text)
        elif isinstance(entry, URLPattern):
            out.add(text.lstrip("^").rstrip("$"))
    return out


def test_every_served_route_has_a_row():
    covered = {route.pattern for route in ROUTES}
    missing = {p for p in _served_patterns() if not p.startswith(EXEMPT_PREFIXES)} - covered
    assert not missing, f"routes without a row in the authorization matrix: {sorted(missing)}"


@pytest.fixture
def world(org, other_org):
    thread = thread_create(org=org, data={"title": "t", "metadata": {"a": "1"}}, actor=ACTOR, messages=[MSG])
    other_thread = thread_create(org=org, data={"title": "u"}, actor=ACTOR)
    member = make_user(org, "mem", "member")
    viewer = make_user(org, "view", "viewer")
    expired = ChatToken.for_thread(thread)
    expired.set_exp(lifetime=timedelta(seconds=-1))
    tokens = {
        "none": None,
        "invalid_key": "tk_not-a-real-key",
        "user_token_as_chat": str(AccessToken.for_user(member)),
        "chat_token_as_user": str(ChatToken.for_thread(thread)),
        "other_org_key": api_key_create(org=other_org, name="o")[1],
        "read_key": api_key_create(org=org, name="r", scope="read")[1],
        "viewer": str(AccessToken.for_user(viewer)),
        "member": str(AccessToken.for_user(member)),
        "write_key": api_key_create(org=org, name="w")[1],
        "chat_other_thread": str(ChatToken.for_thread(other_thread)),
        "chat_this_thread": str(ChatToken.for_thread(thread)),
        "chat_expired": str(expired),
    }
    hook = endpoint_create(org=org, data=HOOK)
    return thread, hook, tokens


def _state(thread):
    row = Thread.objects.filter(pk=thread.pk).values().first()
    hooks = list(WebhookEndpoint.objects.order_by("pk").values())
    return row, Thread.objects.count(), Event.objects.count(), Message.objects.count(), hooks


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_matrix(world, route, caller):
    thread, hook, tokens = world
    before = _state(thread)
    api = Api(tokens[caller])
    message = Message.objects.get(thread=thread)
    path = (
        route.path.replace("{id}", str(thread.pk))
        .replace("{hook}", str(hook.pk))
        .replace("{msg}", str(message.pk))
        .replace("{conv}", f"conv_{thread.pk.hex}")
        .replace("{item}", f"msg_{message.pk.hex}")
    )
    if route.method in ("get", "delete"):
        response = getattr(api, route.method)(path)
    else:
        response = getattr(api, route.method)(path, route.body)
    expected = route.expect[caller]
    assert response.status_code == expected, (route.name, caller, response.content[:300])
    if expected >= 400:
        body = response.json()
        assert {"error", "detail", "success"} & set(body), body  # the surface's own error shape
        if route.write:
            assert _state(thread) == before, f"a refused {route.name} by {caller} changed something"
