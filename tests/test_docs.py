"""The documentation a user reads: /api/docs/ grouped for a reader, docs/api.md covering every route,
the README pointing at both, no file sending a reader to a document they do not have, every runnable
example run against a live server, no broken link, and every command and setting as it really is."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from io import StringIO
from pathlib import Path

import pytest
from django.conf import global_settings, settings
from django.core.management import call_command
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver

from threads.api.schema import PATH_TAGS
from threads.models import ApiKey, Membership, Organization, Thread
from threads.webhooks.models import WebhookEndpoint

from .docs_support import (
    SHELL,
    VARIABLES,
    anchors,
    broken_links,
    inline_code,
    parse,
    run_blocks,
    scratch_project,
    shell_env,
    user_docs,
)
from .test_serve import database_url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "api.md"
README = ROOT / "README.md"
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
    readme = README.read_text()
    top = readme[: readme.index("\n## ")]  # the title and the opening paragraphs
    assert "(docs/api.md)" in top and "/api/docs/" in top


def test_the_readme_is_a_front_door_that_points_at_the_guides():
    readme = README.read_text()
    # A newcomer reads it in five minutes; the reference and the guides hold the rest.
    assert len(readme) < 12_000, f"README.md is {len(readme):,} characters: move detail to docs/"
    for guide in ("docs/api.md", "docs/operators.md", "docs/deploy.md", "bench/RESULTS.md"):
        assert f"]({guide}" in readme, guide
    assert "make run" in readme and "make test" in readme
    # How to deploy, in one line: PostgreSQL and the production server.
    assert "postgres://" in readme and "manage.py serve" in readme
    # Where the old sections went.
    assert "## Commands" not in readme and "## Security" not in readme and "## Operators" not in readme
    operators, deploy = (ROOT / "docs" / "operators.md").read_text(), (ROOT / "docs" / "deploy.md").read_text()
    assert "## Commands" in operators and "/ops/threads/" in operators and "/admin/" in operators
    assert "## Security and operations" in deploy and "manage.py serve" in deploy and "postgres://" in deploy


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
    for path in user_docs():
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


# --- The docs run as written -------------------------------------------------------------------

RUNNABLE_DOCS = sorted(str(p.relative_to(ROOT)) for p in user_docs() if any(b.runnable for b in parse(p).blocks))


def test_the_front_door_the_reference_and_the_operator_guide_have_runnable_examples():
    assert {"README.md", "docs/api.md", "docs/operators.md"} <= set(RUNNABLE_DOCS)
    # One example per compatible surface in the README, each run.
    readme = [b.code for b in parse(README).blocks if b.runnable]
    for route in (
        "/api/v1/chat/threads/", "/v1/threads/$ID/metadata", "/api/chat/threads/", "/v1/threads/$ID ",
        "/v1/conversations/conv_", "/langgraph/threads/$ID",
    ):  # fmt: skip
        assert any(route in code for code in readme), route


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", RUNNABLE_DOCS)
def test_the_runnable_examples_run_as_written(name, live_server, tmp_path, monkeypatch, settings):
    """Every runnable block of the document, in order, in one shell, against a live server on the
    test database: what a reader who has run `make run` has (`$BASE`, the demo organization's
    `$KEY`, one of its threads as `$ID`), and `.venv/bin/python manage.py` on the same database."""
    # The live server's connection must not outlive the test (PostgreSQL drops the database after).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    # A user made by a command in the examples has the real hasher's password; the server checks it.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    out = StringIO()
    call_command("seed_demo", "--org", "demo", "--threads", "3", stdout=out)
    key = out.getvalue().split()[-1]
    thread = Thread.objects.filter(organization__slug="demo").order_by("created_at").first()
    scratch_project(tmp_path)
    password = secrets.token_urlsafe(12)  # what a reader types where the docs say $PASSWORD
    env = shell_env(BASE=live_server.url, KEY=key, ID=str(thread.pk), PASSWORD=password, DATABASE_URL=database_url())
    run = run_blocks(ROOT / name, env, tmp_path)
    if name in WHAT_THE_EXAMPLES_DID:
        WHAT_THE_EXAMPLES_DID[name](run, tmp_path)


def answers(output: str) -> list:
    """The JSON answers a block printed one after another (curl adds no newline)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := output.find("{", at)) != -1:
        value, at = decoder.raw_decode(output, at)
        found.append(value)
    return found


def readme_did(run, workdir):
    # The round trip, then one write on each surface, all on the thread it created.
    thread = Thread.objects.get(pk=run.variables["ID"])
    assert thread.metadata == {
        "channel": "email", "status": "resolved", "plan": "pro",
        "category": "support", "labels": ["billing", "eu"], "topic": "refund", "graph_id": "support-agent",
    }  # fmt: skip
    assert [m.content for m in thread.messages.all()] == ["Where is my refund?"]  # the OpenAI item
    assert thread.variables == {"name": "Ada"} and thread.title == "Billing question"
    assert thread.tags == ["billing", "vip"] and not thread.is_archived
    history = answers(run.outputs[0])[-1]  # the block's last command
    assert [e["action"] for e in history["results"]] == ["updated", "created"]
    assert history["results"][0]["changes"]["metadata"] == {
        "status": {"from": None, "to": "resolved"}, "priority": {"from": "high", "to": None},
    }  # fmt: skip


def api_did(run, workdir):
    demo = Organization.objects.get(slug="demo")
    assert Membership.objects.get(user__username="ann", organization=demo).role == "viewer"
    assert run.variables["ACCESS"].count(".") == 2 and run.variables["REFRESH"].count(".") == 2
    created = Thread.objects.get(organization=demo, is_pinned=True)  # the reference's own thread
    # Created with a priority, patched (status set, priority removed), then a write on each surface.
    assert created.metadata == {
        "status": "resolved", "plan": "pro", "category": "support", "priority": "high", "tags": ["billing", "resolved"],
    }  # fmt: skip
    assert created.tags == ["billing"] and created.title == "Billing question"  # the ChatThread surface
    assert created.message_count == 1 and created.variables == {"name": "Ada"}
    # The Langbase thread was deleted last; so was the webhook endpoint, after its secret was rotated.
    assert not Thread.objects.filter(pk=run.variables["ID"]).exists()
    assert not WebhookEndpoint.objects.filter(pk=run.variables["HOOK"]).exists()
    assert json.loads((workdir / "endpoint.json").read_text())["secret"].startswith("whsec_")


def operators_did(run, workdir):
    assert Membership.objects.get(user__username="ada", organization__slug="acme").role == "viewer"
    assert ApiKey.objects.get(organization__slug="acme").scope == "read"
    assert run.variables["READ_KEY"].startswith("tk_") and run.variables["CHAT"].count(".") == 2
    thread = Thread.objects.get(pk=run.variables["ID"])
    assert thread.metadata["priority"] == "high" and "vip" in thread.tags and thread.title == "Refund request"
    exported = (workdir / "demo.jsonl").read_text().splitlines()
    assert len(exported) == 3 and str(thread.pk) in "".join(exported)
    assert Thread.objects.filter(organization__slug="sandbox").count() == 100


WHAT_THE_EXAMPLES_DID = {"README.md": readme_did, "docs/api.md": api_did, "docs/operators.md": operators_did}


# --- Links, names and commands ----------------------------------------------------------------


def test_no_link_of_the_docs_is_broken():
    assert broken_links(user_docs()) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path, monkeypatch):
    from . import docs_support

    monkeypatch.setattr(docs_support, "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title: `one` (two)\n\n## Title: `one` (two)\n")
    (tmp_path / "b.md").write_text(
        "[ok](a.md#title-one-two) [ok](a.md#title-one-two-1) [ok](#here)\n## Here\n"
        "[bad](a.md#nope) [bad](missing.md) `[not a link](missing.md)` [web](https://example.com/x)\n"
    )
    assert broken_links([tmp_path / "b.md"]) == ["b.md: a.md#nope", "b.md: missing.md"]


def test_headings_get_githubs_anchors():
    assert {"the-merge-rules", "web-chat-session-feather-ai", "chat-threads-fastapi-chatthread"} <= anchors(
        parse(API_MD)
    )
    assert "with-postgresql-and-managepy-serve" in anchors(parse(ROOT / "docs" / "deploy.md"))


def code_of(paths) -> list[tuple[str, str]]:
    """(where, code) for every shell or Python block and every inline code span of ``paths``."""
    found = []
    for path in paths:
        doc = parse(path)
        found += [(b.where(), b.code) for b in doc.blocks if b.lang in SHELL | {"python"}]
        found += [(path.name, span) for span in inline_code(doc)]
    return found


README_AND_DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_every_documented_command_runs_from_the_virtualenv():
    offenders = []
    for where, code in code_of(user_docs()):
        # `python manage.py …` fails on a fresh clone (no Django outside .venv); `python3 -c` is fine.
        found = re.findall(r"(?<![\w/.-])python3?\s+(?:manage\.py|-m\s+pytest|bench/)\S*", code)
        offenders += [(where, m) for m in found]
    for block in [b for path in user_docs() for b in parse(path).blocks if b.lang in SHELL]:
        for line in block.code.splitlines():
            command = line.split("#")[0]
            offenders += [(block.where(), line) for _ in re.finditer(r"(?<!\.venv/bin/python )\bmanage\.py\b", command)]
    assert offenders == []


def test_examples_name_the_service_by_base_and_each_thing_by_one_variable():
    hard_coded, unknown = [], set()
    settings_documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "deploy.md").read_text()))
    for where, code in code_of(README_AND_DOCS):
        for line in code.splitlines():
            if re.search(r"https?://(127\.0\.0\.1|localhost|\[::1\])", line) and not re.match(r"\s*BASE=", line):
                hard_coded.append((where, line))
        unknown |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", code)) - set(VARIABLES) - settings_documented
    assert hard_coded == []
    # $THREAD, $TOKEN, $ENDPOINT… would be second names for $ID, $CHAT, $HOOK.
    assert unknown == set()


def test_every_setting_the_code_reads_is_in_the_deployment_guide():
    # The settings module and the commands (serve reads $PORT and $WEB_CONCURRENCY).
    files = [ROOT / "threads_project" / "settings.py", *ROOT.glob("threads/management/**/*.py")]
    source = "".join(p.read_text() for p in files)
    read = set(re.findall(r"(?:environ(?:\.get)?[\[(]|env_(?:bool|list|int)\()\"([A-Z][A-Z0-9_]+)\"", source))
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "PORT", "WEBHOOK_RETRY_SCHEDULE"} <= read
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert {name for name in read if f"`{name}`" not in guide} == set()
