"""The documentation a user reads: /api/docs/ grouped for a reader, docs/api.md covering every route,
the README pointing at both, and no file sending a reader to a document they do not have."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from threads.api.schema import PATH_TAGS

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "api.md"
TAG_ORDER = [
    "Auth", "Threads", "Messages", "History", "Change feed", "Webhooks",
    "Web chat session", "Thread metadata", "Chat threads", "Langbase threads", "OpenAI conversations",
    "LangGraph threads",
]  # fmt: skip
METHODS = ("get", "post", "put", "patch", "delete")
# The public routes: the canonical API and the paths of the surfaces that speak other products' APIs.
PUBLIC_PREFIXES = ("/api/", "/v1/", "/langgraph/")


def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def url_routes(patterns=None, prefix: str = "/"):
    """(METHOD, path) for every route of the URLconf whose view is a class with handler methods."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from url_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and hasattr(entry.callback, "cls"):
            view = entry.callback.cls
            yield from ((method.upper(), route) for method in METHODS if hasattr(view, method))


def normalized(path: str) -> str:
    """A path with each parameter, ``<str:thread_id>`` or ``{id}``, written ``{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def documented_routes() -> set[tuple[str, str]]:
    text = API_MD.read_text()
    return {(m, normalized(p)) for m, p in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`|)*,;]*)", text)}


def project_files():
    """Every text file of the project (not its virtualenvs, caches or git directory)."""
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [
            d
            for d in subdirs
            if d not in {"__pycache__", "node_modules", "artifacts"}
            and not (d.startswith(".") and d != ".ci")
            and not d.startswith("venv")
        ]
        for name in files:
            path = Path(directory) / name
            if path.suffix in {".py", ".md", ".html", ".txt", ".toml", ".cfg", ".sh", ".yml", ".yaml", ".json"} or (
                name in {"Makefile", "run"}
            ):
                yield path


def test_the_docs_page_groups_operations_in_the_reader_order(client):
    document = schema(client)
    assert [tag["name"] for tag in document["tags"]] == TAG_ORDER
    assert all(tag["description"] for tag in document["tags"])
    assert [tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]] == TAG_ORDER
    assert {tag for _, tag in PATH_TAGS} == set(TAG_ORDER)


def test_every_operation_has_one_known_tag_and_a_one_line_summary(client):
    for method, path, operation in operations(schema(client)):
        assert len(operation.get("tags", [])) == 1 and operation["tags"][0] in TAG_ORDER, (method, path)
        summary = operation.get("summary", "")
        assert summary.strip() and "\n" not in summary, (method, path)


@pytest.mark.parametrize(
    ("path", "tag"),
    [
        ("/api/v1/threads/{thread_id}/chat-token", "Auth"),
        ("/api/v1/threads/{thread_id}", "Threads"),
        ("/api/v1/events", "Change feed"),
        ("/api/v1/webhooks/{id}/rotate-secret", "Webhooks"),
        ("/v1/threads/{thread_id}/metadata", "Thread metadata"),
        ("/v1/threads/{thread_id}/messages", "Langbase threads"),
        ("/api/v1/threads/{thread_id}/messages/{message_id}", "Messages"),
        ("/v1/conversations", "OpenAI conversations"),
        ("/v1/conversations/{conversation_id}/items/{item_id}", "OpenAI conversations"),
        ("/langgraph/threads/search", "LangGraph threads"),
        ("/langgraph/threads/{thread_id}/copy", "LangGraph threads"),
    ],
)
def test_a_route_is_tagged_by_its_path(path, tag):
    assert next(t for pattern, t in PATH_TAGS if re.fullmatch(pattern, path)) == tag


def test_the_reference_documents_every_public_route():
    routes = {(method, normalized(path)) for method, path in url_routes() if path.startswith(PUBLIC_PREFIXES)}
    assert ("PATCH", "/api/v1/threads/{}") in routes and ("POST", "/v1/threads/{}") in routes
    assert routes - documented_routes() == set()


def test_every_operation_of_the_schema_is_in_the_reference(client):
    missing = {(m, normalized(p)) for m, p, _ in operations(schema(client))} - documented_routes()
    assert missing == set()


def test_the_readme_links_the_reference_and_the_docs_page():
    readme = (ROOT / "README.md").read_text()
    top = readme[: readme.index("\n## ")]  # the title and the opening paragraphs
    assert "(docs/api.md)" in top and "/api/docs/" in top


def test_no_file_sends_a_reader_to_a_document_they_do_not_have():
    # Written in pieces, so that this file does not match itself.
    forbidden = re.compile(r"\.\./" + "shared|API" + r"\.md")
    offenders = [
        str(path.relative_to(ROOT))
        for path in project_files()
        if path != Path(__file__).resolve() and forbidden.search(path.read_text(errors="ignore"))
    ]
    assert offenders == []


def test_the_user_docs_name_no_section_number_or_seed_file():
    user_docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in user_docs:
        text = path.read_text()
        assert "§" not in text, path.name
        assert not re.search(r"\bseed[ _-]?0\d\d", text, re.IGNORECASE), path.name


def test_the_receiver_example_accepts_a_signed_delivery_and_refuses_a_forged_one(monkeypatch):
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    blocks = re.findall(r"```python\n(.*?)```", API_MD.read_text(), re.DOTALL)
    receiver = next(block for block in blocks if "Webhook(" in block)
    namespace = {"__name__": "receiver"}
    exec(compile(receiver, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation

    body = json.dumps({"type": "thread.updated", "timestamp": "2026-11-23T10:05:00Z", "data": EVENT}).encode()
    now = datetime.now(tz=UTC)
    headers = {
        "Webhook-Id": "delivery-1",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": Webhook(secret).sign("delivery-1", now, body),
    }
    assert namespace["receive"](body, headers) == 204
    assert namespace["seen"] == {"delivery-1"}
    assert namespace["receive"](body.replace(b"updated", b"deleted"), headers) == 400


EVENT = {
    "id": 1,
    "threadId": "3f6c2a9e-8d1b-4c55-9a0e-0b7d2f1e4a10",
    "createdAt": "2026-11-23T10:05:00Z",
    "action": "updated",
    "version": 2,
    "actor": {"type": "api_key", "id": "1", "name": "ci"},
    "changes": {"title": {"from": "", "to": "Hi"}},
}
