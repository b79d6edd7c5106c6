"""The canonical PATCH's lane (threads/api/lane.py, offered each API request by threads_project/wsgi.py)
answers as the middleware chain and DRF's view do.

Every request below goes to the real WSGI application twice, from the same stored state: once with
the lane (``API_LANE``, the default) and once through the chain and DRF alone. The two answers must
match in status, headers and body, and leave the same thread and history behind.
"""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import transaction
from rest_framework_simplejwt.tokens import AccessToken

from threads.api import throttling
from threads.api.tokens import ChatToken
from threads.models import Event, Thread
from threads.services import state_of, thread_create
from threads_project import wsgi

from .conftest import ACTOR, url, wsgi_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wsgi_keeps_the_test_transaction")]

NOW_DEPENDENT = ("updatedAt",)  # the two runs happen at two moments


def send(
    app,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    token: str | None = None,
    method: str = "PATCH",
    **environ,
) -> tuple:
    """One request to the WSGI application: status, headers (but Date), body (JSON decoded)."""
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    status, headers, content = wsgi_request(app, method, path, body, content_type, **environ)
    headers = sorted(h for h in headers if h[0] != "Date")
    try:
        data = json.loads(content)
        for name in NOW_DEPENDENT:
            if isinstance(data, dict) and name in data:
                data[name] = "<now>"
    except ValueError:
        data = content
    return status, headers, data


def through_both(settings, thread: Thread, path: str, body: bytes, app=None, times: int = 1, **kw):
    """The answers (each of ``times`` sends) and what was stored, with the lane and without."""
    app = app or wsgi.application
    results = []
    for lane in (True, False):
        settings.API_LANE = lane
        cache.clear()  # the throttle's counters
        with transaction.atomic():
            answers = [send(app, path, body, **kw) for _ in range(times)]
            stored = Thread.objects.filter(pk=thread.pk).first()  # None once a DELETE went through
            stored_events = Event.objects.filter(thread_id=thread.pk).order_by("version", "id")
            events = [(e.action, e.version, e.actor_type, e.changes) for e in stored_events]
            results.append((answers, stored and (state_of(stored), stored.version), events))
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
    "If-Match current": ({"title": "x"}, {"HTTP_IF_MATCH": '"1"'}),
    "If-Match stale": ({"title": "x"}, {"HTTP_IF_MATCH": '"7"'}),
    "If-Match garbage": ({"title": "x"}, {"HTTP_IF_MATCH": "seven"}),
    "If-Match star": ({"title": "x"}, {"HTTP_IF_MATCH": "*"}),
    "an unknown field": ({"colour": "red"}, {}),
    "a read-only field": ({"version": 9}, {}),
    "a wrong type": ({"isArchived": "yes"}, {}),
    "too many keys": ({"metadata": {f"k{i}": "v" for i in range(16)}}, {}),
    "too many tags": ({"addTags": [f"t{i}" for i in range(40)]}, {}),
    "a value too long": ({"metadata": {"a": "x" * 513}}, {}),
    "a NUL": ({"title": "a\x00b"}, {}),
    "not an object": ([1, 2], {}),
    "a line separator": ({"title": "a\u2028b"}, {}),
}


@pytest.mark.parametrize("body, environ", CASES.values(), ids=CASES.keys())
def test_the_lane_answers_as_drf_does(settings, write_key, thread, body, environ):
    lane, drf = through_both(settings, thread, url(thread), json.dumps(body).encode(), token=write_key, **environ)
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
def test_the_lane_answers_bad_bodies_as_drf_does(settings, write_key, thread, body, content_type):
    lane, drf = through_both(settings, thread, url(thread), body, content_type=content_type, token=write_key)
    assert lane == drf


def test_the_lane_answers_every_credential_as_drf_does(
    settings, org, other_org, thread, read_key, other_key, member, viewer
):
    theirs = thread_create(org=other_org, actor=ACTOR, data={"title": "theirs"})
    tokens = {
        "no credential": None,
        "a bad key": "tk_nope",
        "a bad JWT": "eyJ.bad.token",
        "a read key": read_key,
        "another organization's key": other_key,
        "a member": str(AccessToken.for_user(member)),
        "a viewer": str(AccessToken.for_user(viewer)),
        "the thread's chat token": str(ChatToken.for_thread(thread)),
        "another thread's chat token": str(ChatToken.for_thread(theirs)),
    }
    for name, token in tokens.items():
        for body in ({"metadata": {"b": "2"}}, {"title": "chat tokens may not"}):
            lane, drf = through_both(settings, thread, url(thread), json.dumps(body).encode(), token=token)
            assert lane == drf, name


def test_the_lane_answers_other_paths_as_drf_does(settings, write_key, other_org, thread):
    theirs = thread_create(org=other_org, actor=ACTOR, data={"title": "theirs"})
    for path, status in (
        (url(theirs), "404"),
        (url("not-a-uuid"), "404"),
        (url(thread, "/"), "404"),
        (url("00000000-0000-0000-0000-000000000000"), "404"),
        ("/api/v1/threads/", "404"),
        (url(thread, "/messages"), "405"),
    ):
        lane, drf = through_both(settings, thread, path, b'{"title": "x"}', token=write_key)
        assert lane == drf, path
        assert lane[0][0][0].startswith(status), (path, lane[0][0])


def test_the_lane_answers_other_methods_as_drf_does(settings, write_key, thread):
    for method in ("GET", "PUT", "POST", "DELETE", "OPTIONS"):
        lane, drf = through_both(settings, thread, url(thread), b'{"title": "x"}', token=write_key, method=method)
        assert lane == drf, method


def test_the_lane_throttles_as_drf_does(settings, write_key, thread, monkeypatch):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "api_key": "2/min"}
    # Both runs in the same moment of the throttle's window: its Retry-After counts the seconds
    # left in it, which two runs a moment apart may see differ by one (19 against 18).
    now = time.time()
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: now))
    lane, drf = through_both(settings, thread, url(thread), b'{"metadata": {"n": "1"}}', times=4, token=write_key)
    assert lane == drf
    assert [status[:3] for status, _, _ in lane[0]] == ["200", "200", "429", "429"]
    assert "Retry-After" in dict(lane[0][2][1])


def test_the_lane_leaves_to_the_middleware_what_it_would_refuse(settings, write_key, thread):
    body = b'{"metadata": {"b": "2"}}'
    cases = {
        "a host not allowed": ({"HTTP_HOST": "evil.example"}, "400"),
        "a chunked body": ({"HTTP_TRANSFER_ENCODING": "chunked"}, "411"),
        "a body over the limit": ({"CONTENT_LENGTH": str(settings.MAX_BODY_BYTES + 1)}, "413"),
    }
    for name, (environ, status) in cases.items():
        lane, drf = through_both(settings, thread, url(thread), body, token=write_key, **environ)
        assert lane == drf, name
        assert lane[0][0][0].startswith(status), (name, lane[0][0])


@pytest.mark.parametrize(
    "setting, value, environ, status",
    [
        ("SECURE_SSL_REDIRECT", True, {}, "301"),
        ("DISALLOWED_USER_AGENTS", [re.compile(r"^bot")], {"HTTP_USER_AGENT": "bot/1"}, "403"),
        ("PREPEND_WWW", True, {}, "301"),
        ("SECURE_HSTS_SECONDS", 3600, {"wsgi.url_scheme": "https", "HTTPS": "on"}, "200"),
    ],
)
def test_the_lane_keeps_what_the_middleware_settings_ask(settings, write_key, thread, setting, value, environ, status):
    """The middleware reads its settings when it is built: a handler made under the setting."""
    setattr(settings, setting, value)
    settings.SECURE_SSL_HOST = None
    app = wsgi.DoorsHandler()
    lane, drf = through_both(
        settings, thread, url(thread), b'{"metadata": {"b": "2"}}', app=app, token=write_key, **environ
    )
    assert lane == drf
    assert lane[0][0][0].startswith(status), lane[0][0]
    if setting == "SECURE_HSTS_SECONDS":
        assert "Strict-Transport-Security" in dict(lane[0][0][1])


def test_the_lane_takes_the_common_patch(settings, write_key, thread):
    """The lane answers the common PATCH itself, before the chain: Django's URL resolution, which
    sets ``resolver_match`` on the request it routes, never saw it."""
    seen = []
    for lane in (True, False):
        settings.API_LANE = lane
        handler = wsgi.DoorsHandler()
        original = handler.api.get_response

        def spy(request, original=original):
            response = original(request)
            seen.append(getattr(request, "resolver_match", None) is not None)
            return response

        handler.api.get_response = spy
        status, _, data = send(
            handler, url(thread), json.dumps({"metadata": {"b": str(lane)}}).encode(), token=write_key
        )
        assert status.startswith("200")
    assert seen == [False, True]
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1", "b": "False"} and thread.version == 3


@pytest.mark.parametrize("lane", [True, False])
def test_a_patch_answers_the_thread_as_a_get_shows_it(settings, write_key, thread, lane):
    """On PostgreSQL the PATCH's own statement renders its answer; it is the canonical thread."""
    settings.API_LANE = lane
    for body in ({"metadata": {"b": "x\u2028y"}, "tags": ["é"], "projectId": "p"}, {}, {"title": "T"}):
        status, headers, patched = send(wsgi.application, url(thread), json.dumps(body).encode(), token=write_key)
        got = send(wsgi.application, url(thread), b"", token=write_key, method="GET")
        assert status.startswith("200") and got[0].startswith("200")
        assert patched == got[2]
        assert dict(headers)["ETag"] == dict(got[1])["ETag"]


def test_the_lane_is_on_with_the_projects_api_chain():
    assert wsgi.application.api.lane is not None
