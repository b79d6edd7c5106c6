"""The real WSGI application: API paths run the short middleware chain, pages for people the full
one (sessions, CSRF, login, frame guard, static files)."""

from __future__ import annotations

import json

import pytest

from threads_project.wsgi import application

from .conftest import url, wsgi_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wsgi_keeps_the_test_transaction")]


def call(method: str, path: str, body: bytes = b"", **headers) -> tuple[int, dict[str, list[str]], bytes]:
    environ = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    status, response_headers, content = wsgi_request(application, method, path, body, **environ)
    by_name: dict[str, list[str]] = {}
    for name, value in response_headers:
        by_name.setdefault(name.lower(), []).append(value)
    return int(status.split()[0]), by_name, content


def test_an_api_patch_skips_the_people_middleware(write_key, thread):
    status, headers, content = call(
        "PATCH", url(thread), json.dumps({"metadata": {"a": "1"}}).encode(), authorization=f"Bearer {write_key}"
    )
    body = json.loads(content)
    assert status == 200 and body["metadata"] == {"a": "1"}
    assert headers["etag"] == [f'"{body["version"]}"']
    assert headers["x-content-type-options"] == ["nosniff"]  # SecurityMiddleware runs
    assert "x-frame-options" not in headers  # XFrameOptionsMiddleware does not
    assert "set-cookie" not in headers and "Cookie" not in headers.get("vary", [""])[0]  # nor sessions, CSRF


@pytest.mark.parametrize("path", ["/api/v1/threads", "/v1/threads", "/api/chat/threads/x"])
def test_every_api_surface_takes_the_short_chain(path, write_key):
    status, headers, _ = call("GET", path, authorization=f"Bearer {write_key}")
    assert status < 500 and "x-frame-options" not in headers


def test_the_body_size_limit_still_guards_api_paths(write_key, thread):
    status, _, content = call("PATCH", url(thread), b"x" * (256 * 1024 + 1), authorization=f"Bearer {write_key}")
    assert (status, json.loads(content)["error"]["code"]) == (413, "payload_too_large")


def test_a_people_page_gets_the_full_chain():
    status, headers, _ = call("GET", "/accounts/login/")
    assert status == 200 and headers["x-frame-options"] == ["DENY"]
    assert any(cookie.strip().startswith("csrftoken=") for cookie in headers["set-cookie"])


def test_a_login_post_without_a_csrf_token_is_403_through_the_real_app():
    status, _, _ = call(
        "POST", "/admin/login/", b"username=x&password=y", content_type="application/x-www-form-urlencoded"
    )
    assert status == 403


def test_the_api_docs_page_keeps_its_frame_guard_and_static_files_are_served():
    status, headers, _ = call("GET", "/api/docs/")
    assert status == 200 and headers["x-frame-options"] == ["DENY"]
    status, headers, content = call("GET", "/static/admin/css/base.css")
    assert status == 200 and headers["content-type"][0].startswith("text/css") and content


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/v1/nothing", "/api/chat/nothing", "/api/nothing", "/langgraph/nothing"]
)
def test_under_debug_an_unknown_api_route_through_the_real_app_is_the_404_envelope(settings, path):
    settings.DEBUG = True
    status, headers, content = call("GET", path)
    assert status == 404 and headers["content-type"] == ["application/json"]
    assert json.loads(content)["error"]["code"] == "not_found"


def test_under_debug_a_bad_host_on_an_api_path_is_the_400_envelope(settings):
    settings.DEBUG = True
    status, headers, content = call("GET", "/api/v1/threads", host="evil.example")
    assert status == 400 and headers["content-type"] == ["application/json"]
    assert json.loads(content)["error"]["code"] == "invalid_parameters"
