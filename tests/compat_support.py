"""Helpers shared by the seed-surface tests: what the canonical API says about a thread."""

from __future__ import annotations

from threads.api.tokens import ChatToken

from .conftest import Api, url


def chat_api(thread) -> Api:
    return Api(str(ChatToken.for_thread(thread)))


def canonical(api: Api, thread_id) -> dict:
    response = api.get(url(thread_id))
    assert response.status_code == 200, response.content
    return response.json()


def last_event(api: Api, thread_id) -> dict:
    response = api.get(url(thread_id, "/history"))
    assert response.status_code == 200, response.content
    return response.json()["results"][0]
