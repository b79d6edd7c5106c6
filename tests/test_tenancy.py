"""Another organization's thread is 404 on every route, and nothing of it changes."""

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from threads.models import Event, Message, Thread

from .conftest import Api, make_user, url

pytestmark = pytest.mark.django_db

ROUTES = [
    ("get", ""),
    ("patch", ""),
    ("delete", ""),
    ("get", "/messages"),
    ("post", "/messages"),
    ("get", "/history"),
    ("post", "/chat-token"),
]
BODIES = {"": {"title": "stolen"}, "/messages": {"role": "user", "content": "x"}, "/chat-token": {}}


def snapshot(thread):
    row = Thread.objects.filter(pk=thread.pk).values().get()
    return row, Event.objects.filter(thread_id=thread.pk).count(), Message.objects.filter(thread=thread).count()


@pytest.mark.parametrize("method, suffix", ROUTES)
def test_another_organizations_key_gets_404_and_changes_nothing(outsider, thread, method, suffix):
    before = snapshot(thread)
    args = () if method in ("get", "delete") else (BODIES[suffix],)
    response = getattr(outsider, method)(url(thread, suffix), *args)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "thread_not_found"
    assert snapshot(thread) == before


@pytest.mark.parametrize("method, suffix", ROUTES)
def test_another_organizations_member_gets_404(other_org, thread, method, suffix):
    other = Api(str(AccessToken.for_user(make_user(other_org, "eve"))))
    args = () if method in ("get", "delete") else (BODIES[suffix],)
    assert getattr(other, method)(url(thread, suffix), *args).status_code == 404


def test_the_list_shows_only_the_callers_threads(outsider, api, thread):
    assert outsider.get("/api/v1/threads").json()["results"] == []
    assert [r["id"] for r in api.get("/api/v1/threads").json()["results"]] == [str(thread.pk)]
