"""One thread changed through every door in turn keeps every change."""

from __future__ import annotations

import pytest

from .compat_support import chat_api
from .conftest import url

pytestmark = pytest.mark.django_db


def test_one_thread_changed_through_every_surface_and_the_canonical_api_keeps_every_change(api, member_api, thread):
    chat = chat_api(thread)
    steps = [
        (chat.patch, f"/api/v1/chat/threads/{thread.pk}", {"variables": {"name": "Ada"}}),
        (api.patch, f"/v1/threads/{thread.pk}/metadata", {"metadata": {"plan": "pro"}}),
        (member_api.patch, f"/api/chat/threads/{thread.pk}", {"title": "Renamed", "tags": ["vip"]}),
        (api.post, f"/v1/threads/{thread.pk}", {"metadata": {"status": "resolved"}}),
        (api.patch, url(thread), {"isPinned": True, "metadata": {"a": None}}),
        (api.patch, f"/langgraph/threads/{thread.pk}", {"metadata": {"graph_id": "agent"}}),
        (api.post, f"/v1/conversations/conv_{thread.pk.hex}/items", {"items": [{"role": "user", "content": "Hi"}]}),
    ]
    for send, path, body in steps:
        response = send(path, body)
        assert response.status_code == 200, (path, response.content)

    stored = api.get(url(thread)).json()
    assert stored["variables"] == {"v": "x", "name": "Ada"}
    assert stored["metadata"] == {"plan": "pro", "status": "resolved", "graph_id": "agent"}
    assert stored["messageCount"] == 1
    assert (stored["title"], stored["tags"], stored["isPinned"]) == ("Renamed", ["vip"], True)
    assert stored["version"] == 8
    events = api.get(url(thread, "/history")).json()["results"]
    assert [e["actor"]["type"] for e in events] == [
        "api_key",
        "api_key",
        "api_key",
        "api_key",
        "user",
        "api_key",
        "chat_token",
        "command",
    ]
    assert [e["version"] for e in events] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert [e["action"] for e in events[:2]] == ["message_added", "updated"]
