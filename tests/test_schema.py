"""The OpenAPI document and its docs page are served without any CDN."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_lists_every_canonical_route(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/threads",
        "/api/v1/threads/{thread_id}",
        "/api/v1/threads/{thread_id}/messages",
        "/api/v1/threads/{thread_id}/history",
        "/api/v1/threads/{thread_id}/chat-token",
        "/api/v1/auth/token",
        "/api/v1/auth/token/refresh",
    ]:
        assert path in paths
    assert set(paths["/api/v1/threads/{thread_id}"]) >= {"get", "patch", "delete"}
    assert set(paths["/api/v1/threads/{thread_id}/messages/{message_id}"]) == {"delete"}


def test_the_field_sdk_surfaces_are_in_the_schema_each_under_its_own_tag(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    expected = {
        "/v1/conversations": ({"post"}, "OpenAI conversations"),
        "/v1/conversations/{conversation_id}": ({"get", "post", "delete"}, "OpenAI conversations"),
        "/v1/conversations/{conversation_id}/items": ({"get", "post"}, "OpenAI conversations"),
        "/v1/conversations/{conversation_id}/items/{item_id}": ({"get", "delete"}, "OpenAI conversations"),
        "/langgraph/threads": ({"post"}, "LangGraph threads"),
        "/langgraph/threads/search": ({"post"}, "LangGraph threads"),
        "/langgraph/threads/count": ({"post"}, "LangGraph threads"),
        "/langgraph/threads/{thread_id}": ({"get", "patch", "delete"}, "LangGraph threads"),
        "/langgraph/threads/{thread_id}/copy": ({"post"}, "LangGraph threads"),
    }
    for path, (methods, tag) in expected.items():
        operations = document["paths"][path]
        assert set(operations) - {"parameters"} == methods, path
        assert all(operations[m]["tags"] == [tag] for m in methods), path
    assert document["paths"]["/langgraph/threads/count"]["post"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"type": "integer"}
    assert document["components"]["securitySchemes"]["apiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "An API key (`tk_…`), or any credential `Authorization: Bearer` takes.",
    }


def test_the_docs_page_uses_only_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
