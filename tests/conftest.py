"""Fixtures: organizations, people and keys made the way the product makes them."""

from __future__ import annotations

import io
import json
from collections import Counter
from wsgiref.util import setup_testing_defaults

import pytest
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from threads.keys import api_key_create
from threads.models import Membership, Organization
from threads.services import Actor, thread_create

ACTOR = Actor.command("tests")


class Api:
    """A client bound to one credential, speaking JSON."""

    def __init__(self, token: str | None = None) -> None:
        self.client = APIClient()
        if token:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def _send(self, method: str, path: str, body=None, **headers):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        data = None if body is None else json.dumps(body)
        return getattr(self.client, method)(path, data=data, content_type="application/json", **extra)

    def get(self, path: str, params=None, **headers):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        return self.client.get(path, params or {}, **extra)

    def post(self, path, body=None, **headers):
        return self._send("post", path, body, **headers)

    def patch(self, path, body=None, **headers):
        return self._send("patch", path, body, **headers)

    def put(self, path, body=None, **headers):
        return self._send("put", path, body, **headers)

    def delete(self, path, **headers):
        return self._send("delete", path, None, **headers)


def make_org(slug: str) -> Organization:
    return Organization.objects.create(slug=slug, name=slug.title())


def make_user(org: Organization, username: str, role: str = "member", password: str = "pw-123456"):
    user = get_user_model().objects.create_user(username=username, password=password)
    Membership.objects.create(user=user, organization=org, role=role)
    return user


@pytest.fixture
def org(db) -> Organization:
    return make_org("acme")


@pytest.fixture
def other_org(db) -> Organization:
    return make_org("globex")


@pytest.fixture
def write_key(org) -> str:
    return api_key_create(org=org, name="writer", scope="write")[1]


@pytest.fixture
def read_key(org) -> str:
    return api_key_create(org=org, name="reader", scope="read")[1]


@pytest.fixture
def other_key(other_org) -> str:
    return api_key_create(org=other_org, name="other", scope="write")[1]


@pytest.fixture
def api(write_key) -> Api:
    return Api(write_key)


@pytest.fixture
def reader(read_key) -> Api:
    return Api(read_key)


@pytest.fixture
def outsider(other_key) -> Api:
    return Api(other_key)


@pytest.fixture
def member(org):
    return make_user(org, "mia", "member")


@pytest.fixture
def viewer(org):
    return make_user(org, "vic", "viewer")


@pytest.fixture
def member_api(member) -> Api:
    return Api(str(AccessToken.for_user(member)))


@pytest.fixture
def viewer_api(viewer) -> Api:
    return Api(str(AccessToken.for_user(viewer)))


@pytest.fixture
def thread(org):
    return thread_create(
        org=org,
        actor=ACTOR,
        data={"title": "Hello", "metadata": {"a": "1"}, "variables": {"v": "x"}, "tags": ["one"]},
    )


def url(thread_or_id, suffix: str = "") -> str:
    thread_id = getattr(thread_or_id, "pk", thread_or_id)
    return f"/api/v1/threads/{thread_id}{suffix}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are made in many tests; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


FIGURES: dict[str, object] = {}


@pytest.fixture
def figures() -> dict[str, object]:
    """Figures a test reports at the end of the run (fuzz cases, faults injected, writes lost…)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    for name, value in FIGURES.items():
        if isinstance(value, Counter):
            by_status = ", ".join(f"{k}: {n}" for k, n in sorted(value.items()))
            value = f"{value.total()} cases (by status: {by_status})"
        terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="module")
def serve_url(django_db_setup, django_db_blocker, tmp_path_factory) -> str:
    """One ``manage.py serve`` for a test module (tests/compat_support.py, ``served``)."""
    from .compat_support import served

    with served(tmp_path_factory.mktemp("serve") / "serve.log") as base:
        yield base


@pytest.fixture
def wsgi_keeps_the_test_transaction():
    """For tests that call the WSGI application directly, as Django's test client does: the app
    must not close the connection that holds the test's transaction at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def wsgi_request(app, method: str, path: str, body: bytes = b"", content_type: str = "application/json", **environ):
    """One request straight to a WSGI application: (status line, response headers, body bytes)."""
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": content_type,
        **environ,
    }
    setup_testing_defaults(env)
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"], started["headers"] = status, headers

    result = app(env, start_response)
    try:
        content = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return started["status"], started["headers"], content
