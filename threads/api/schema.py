"""OpenAPI: the tag of every operation (by its path) and how the bearer credentials are described."""

from __future__ import annotations

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

# Path (as the document writes it) -> tag; the first pattern that matches the whole path wins.
# SPECTACULAR_SETTINGS["TAGS"] describes the tags and sets their order in /api/docs/.
PATH_TAGS = [
    (r"/api/v1/auth/.*|/api/v1/threads/[^/]+/chat-token", "Auth"),
    (r"/api/v1/threads/[^/]+/messages(/[^/]+)?", "Messages"),
    (r"/api/v1/threads/[^/]+/history", "History"),
    (r"/api/v1/threads(/[^/]+)?", "Threads"),
    (r"/api/v1/events(/.*)?", "Change feed"),
    (r"/api/v1/webhooks(/.*)?", "Webhooks"),
    (r"/api/v1/chat/threads/[^/]+", "Web chat session"),
    (r"/v1/threads/[^/]+/metadata", "Thread metadata"),
    (r"/api/chat/threads/[^/]+", "Chat threads"),
    (r"/v1/threads(/.*)?", "Langbase threads"),
    (r"/v1/conversations(/.*)?", "OpenAI conversations"),
    (r"/langgraph/threads(/.*)?", "LangGraph threads"),
]


def tag_for(path: str) -> str | None:
    return next((tag for pattern, tag in PATH_TAGS if re.fullmatch(pattern, path)), None)


class ThreadsAutoSchema(AutoSchema):
    """Tags each operation by its path, so that a new route lands in its group without a tag of
    its own; a path no pattern knows keeps drf-spectacular's default (which a test refuses)."""

    def get_tags(self) -> list[str]:
        tag = tag_for(self.path)
        return [tag] if tag else super().get_tags()


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "threads.api.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`tk_…`), a user access token (JWT) or a chat token (JWT).",
        }


class ApiKeyHeaderScheme(OpenApiAuthenticationExtension):
    """The LangGraph surface: the key alone in ``X-Api-Key`` (or the bearer credentials, as the
    tag's description says)."""

    target_class = "threads.api.authentication.ApiKeyHeaderAuthentication"
    name = "apiKeyHeader"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": "An API key (`tk_…`), or any credential `Authorization: Bearer` takes.",
        }
