"""The canonical PATCH's lane (threads/api/lane.py) answers as DRF's view does.

Every request below goes through the route twice, from the same stored state: once with the lane
(``API_LANE``, the default) and once through DRF alone. The two answers must match in status,
headers and body, and leave the same thread and history behind.
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from rest_framework_simplejwt.tokens import AccessToken

from threads.api.tokens import ChatToken
from threads.models import Event, Thread
from threads.services import state_of, thread_create

from .conftest import ACTOR, Api, url

pytestmark = pytest.mark.django_db

NOW_DEPENDENT = ("updatedAt",)  # the two runs happen at two moments


def answer(client: Api, path: str, body: bytes, content_type: str, headers: dict) -> tuple:
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    response = client.client.generic("PATCH", path, body, content_type=content_type, **extra)
    content = response.content
    try:
        data = json.loads(content)
        for name in NOW_DEPENDENT:
            if isinstance(data, dict) and name in data:
                data[name] = "<now>"
    except ValueError:
        data = content
    return response.status_code, sorted((k, v) for k, v in response.headers.items() if k != "Date"), data


def through_both(
    settings,
    client: Api,
    thread: Thread,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    headers: dict | None = None,
    times: int = 1,
):
    """The answers (each of ``times`` sends) and what was stored, with the lane and without."""
    results = []
    for lane in (True, False):
        settings.API_LANE = lane
        from django.core.cache import cache

        cache.clear()  # the throttle's counters
        with transaction.atomic():
            answers = [answer(client, path, body, content_type, headers or {}) for _ in range(times)]
            thread.refresh_from_db()
            events = [(e.action, e.version, e.actor_type, e.changes) for e in Event.objects.filter(thread_id=thread.pk)]
            results.append((answers, state_of(thread), thread.version, events))
            transaction.set_rollback(True)
    return results


CASES = {
    "a merge": ({"metadata": {"b": "2", "a": None}}, {}),
    "every field": (
        {
            "title": "T",
            "variables": {"v": None, "w": "1"},
            "tags": ["x", "Y "],
            "addTags": ["z"],
            "removeTags": ["x"],
            "isArchived": True,
            "isPinned": True,
            "projectId": "p",
            "userId": None,
        },
        {},
    ),
    "a no-op": ({}, {}),
    "the same value again": ({"metadata": {"a": "1"}}, {}),
    "If-Match current": ({"title": "x"}, {"If-Match": '"1"'}),
    "If-Match stale": ({"title": "x"}, {"If-Match": '"7"'}),
    "If-Match garbage": ({"title": "x"}, {"If-Match": "seven"}),
    "If-Match star": ({"title": "x"}, {"If-Match": "*"}),
    "an unknown field": ({"colour": "red"}, {}),
    "a read-only field": ({"version": 9}, {}),
    "a wrong type": ({"isArchived": "yes"}, {}),
    "too many keys": ({"metadata": {f"k{i}": "v" for i in range(16)}}, {}),
    "too many tags": ({"addTags": [f"t{i}" for i in range(40)]}, {}),
    "a value too long": ({"metadata": {"a": "x" * 513}}, {}),
    "a NUL": ({"title": "a\x00b"}, {}),
    "not an object": ([1, 2], {}),
}


@pytest.mark.parametrize("body, headers", CASES.values(), ids=CASES.keys())
def test_the_lane_answers_as_drf_does(settings, api, thread, body, headers):
    lane, drf = through_both(settings, api, thread, url(thread), json.dumps(body).encode(), headers=headers)
    assert lane == drf


BODIES = {
    "invalid JSON": (b'{"metadata": ', "application/json"),
    "duplicate keys": (b'{"title": "a", "title": "b"}', "application/json"),
    "an empty body": (b"", "application/json"),
    "a lone surrogate": (b'{"title": "\\ud800"}', "application/json"),
    "text/plain": (b'{"title": "a"}', "text/plain"),
    "a form": (b"title=a", "application/x-www-form-urlencoded"),
    "JSON in UTF-8, said": (b'{"title": "\xc3\xa9"}', "application/json; charset=utf-8"),
    "JSON in Latin-1, said": (b'{"title": "\xe9"}', "application/json; charset=latin-1"),
}


@pytest.mark.parametrize("body, content_type", BODIES.values(), ids=BODIES.keys())
def test_the_lane_answers_bad_bodies_as_drf_does(settings, api, thread, body, content_type):
    lane, drf = through_both(settings, api, thread, url(thread), body, content_type)
    assert lane == drf


def test_the_lane_answers_every_credential_as_drf_does(
    settings, org, other_org, thread, read_key, other_key, member, viewer
):
    theirs = thread_create(org=other_org, actor=ACTOR, data={"title": "theirs"})
    callers = {
        "no credential": Api(),
        "a bad key": Api("tk_nope"),
        "a bad JWT": Api("eyJ.bad.token"),
        "a read key": Api(read_key),
        "another organization's key": Api(other_key),
        "a member": Api(str(AccessToken.for_user(member))),
        "a viewer": Api(str(AccessToken.for_user(viewer))),
        "the thread's chat token": Api(str(ChatToken.for_thread(thread))),
        "another thread's chat token": Api(str(ChatToken.for_thread(theirs))),
    }
    bodies = [{"metadata": {"b": "2"}}, {"title": "chat tokens may not"}]
    for name, client in callers.items():
        for body in bodies:
            lane, drf = through_both(settings, client, thread, url(thread), json.dumps(body).encode())
            assert lane == drf, name


def test_the_lane_answers_other_ids_as_drf_does(settings, api, org, other_org, thread):
    theirs = thread_create(org=other_org, actor=ACTOR, data={"title": "theirs"})
    for thread_id in (theirs.pk, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        lane, drf = through_both(settings, api, thread, url(thread_id), b'{"title": "x"}')
        assert lane == drf, thread_id
        assert lane[0][0][0] == 404


def test_the_lane_throttles_as_drf_does(settings, api, thread):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "api_key": "2/min"}
    lane, drf = through_both(settings, api, thread, url(thread), b'{"metadata": {"n": "1"}}', times=4)
    assert lane == drf
    statuses = [status for status, _, _ in lane[0]]
    assert statuses == [200, 200, 429, 429]
    assert dict(lane[0][2][1])["Retry-After"]


def test_the_lane_takes_the_common_patch(settings, api, thread):
    """The lane answers the common PATCH itself: DRF's Request, which sets ``auth`` on the request
    it wraps when it authenticates, never saw it."""
    settings.API_LANE = True
    response = api.patch(url(thread), {"metadata": {"b": "2"}})
    assert response.status_code == 200 and response["ETag"] == '"2"'
    assert not hasattr(response.wsgi_request, "auth")
    settings.API_LANE = False
    response = api.patch(url(thread), {"metadata": {"c": "3"}})
    assert response.status_code == 200 and hasattr(response.wsgi_request, "auth")
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1", "b": "2", "c": "3"} and thread.version == 3


@pytest.mark.parametrize("lane", [True, False])
def test_a_patch_answers_the_thread_as_a_get_shows_it(settings, api, thread, lane):
    """On PostgreSQL the PATCH's own statement renders its answer; it is the canonical thread."""
    settings.API_LANE = lane
    for body in ({"metadata": {"b": "x\u2028y"}, "tags": ["é"], "projectId": "p"}, {}, {"title": "T"}):
        patched = api.patch(url(thread), body)
        got = api.get(url(thread))
        assert patched.status_code == got.status_code == 200
        assert patched.json() == got.json() and patched["ETag"] == got["ETag"]
        assert "\u2028" not in patched.content.decode()  # escaped, as DRF's renderer does
