"""The OpenAPI document and its docs page are served without any CDN."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_lists_every_canonical_route(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ["/api/v1/threads", "/api/v1/threads/{thread_id}", "/api/v1/threads/{thread_id}/messages",
                 "/api/v1/threads/{thread_id}/history", "/api/v1/threads/{thread_id}/chat-token",
                 "/api/v1/auth/token", "/api/v1/auth/token/refresh"]:
        assert path in paths
    assert set(paths["/api/v1/threads/{thread_id}"]) >= {"get", "patch", "delete"}


def test_the_docs_page_uses_only_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
