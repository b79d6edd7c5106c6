"""Seed 002 (FastAPI chat threads): ``PATCH /api/chat/threads/{thread_id}``.

``{title?, tags?, isArchived?}`` where ``null`` leaves a field as it is; answers a ``ChatThread``.
Errors speak FastAPI: 422 ``{"detail": [{loc, msg, type, input}]}`` for every bad body (pydantic
v2's types and messages), ``{"detail": "..."}`` otherwise.

Unknown fields are refused (pydantic's ``extra_forbidden``) rather than ignored as a default
pydantic model would: the merge rules reject unknown fields everywhere, and a client that sends a field
this surface cannot store should hear so.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from .. import services
from ..errors import ThreadError
from ..merge import format_datetime
from .base import CompatView

WRITABLE = frozenset({"title", "tags", "isArchived"})
DETAILS = {
    401: "Not authenticated",
    404: "Thread not found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}
# pydantic v2's error type and message for each field's expected type.
EXPECTED = {
    "title": ("string_type", "Input should be a valid string"),
    "tags": ("list_type", "Input should be a valid list"),
    "isArchived": ("bool_type", "Input should be a valid boolean"),
}

STRING = {"type": "string"}
OPTIONAL_STRING = {"type": "string", "nullable": True}
CHAT_THREAD = {
    "type": "object",
    "properties": {
        "threadId": STRING,
        "title": STRING,
        "projectId": STRING,
        "createdAt": {"type": "string", "format": "date-time"},
        "messageCount": {"type": "integer"},
        "tags": {"type": "array", "items": STRING},
        "uuid": STRING,
        "version": STRING,
        "userId": OPTIONAL_STRING,
        "modifiedAt": {"type": "string", "format": "date-time"},
        "lastMessageAt": {"type": "string", "format": "date-time", "nullable": True},
        "isActive": {"type": "boolean"},
        "isArchived": {"type": "boolean"},
        "isPinned": {"type": "boolean"},
    },
    "required": ["threadId", "title", "projectId", "createdAt", "messageCount"],
}
VALIDATION_ERROR = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {}},
                    "msg": STRING,
                    "type": STRING,
                    "input": {},
                },
                "required": ["loc", "msg", "type"],
            },
        }
    },
}
DETAIL = {"type": "object", "properties": {"detail": STRING}}


class RequestValidationError(Exception):
    """FastAPI's 422: every problem of the body at once."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


def problem(loc: list, type_: str, msg: str, value: Any) -> dict[str, Any]:
    return {"type": type_, "loc": ["body", *loc], "msg": msg, "input": value}


def parse(body: Any) -> dict[str, Any]:
    """The patch to apply: the fields given and not null, each of the right JSON type."""
    if not isinstance(body, dict):
        message = "Input should be a valid dictionary or object to extract fields from"
        raise RequestValidationError([problem([], "model_attributes_type", message, body)])
    errors = []
    for name, value in body.items():
        if name not in WRITABLE:
            errors.append(problem([name], "extra_forbidden", "Extra inputs are not permitted", value))
        elif value is not None:
            errors.extend(_type_errors(name, value))
    if errors:
        raise RequestValidationError(errors)
    return {name: value for name, value in body.items() if value is not None}


def _type_errors(name: str, value: Any) -> list[dict[str, Any]]:
    kind = {"title": str, "tags": list, "isArchived": bool}[name]
    if not isinstance(value, kind):
        return [problem([name], *EXPECTED[name], value)]
    if name == "tags":
        return [
            problem(["tags", i], *EXPECTED["title"], item) for i, item in enumerate(value) if not isinstance(item, str)
        ]
    return []


def render(thread) -> dict:
    return {
        "threadId": str(thread.pk),
        "title": thread.title,
        "projectId": thread.project_id or "",
        "createdAt": format_datetime(thread.created_at),
        "messageCount": thread.message_count,
        "tags": thread.tags,
        "uuid": str(thread.pk),
        "version": str(thread.version),
        "userId": thread.user_id,
        "modifiedAt": format_datetime(thread.updated_at),
        "lastMessageAt": format_datetime(thread.last_activity_at),
        "isActive": thread.is_active,
        "isArchived": thread.is_archived,
        "isPinned": thread.is_pinned,
    }


class ChatThreadView(CompatView):
    def handle_error(self, exc: Exception, context) -> Response:
        if isinstance(exc, ParseError):  # FastAPI answers a body it cannot decode with a 422
            error = problem([], "json_invalid", "JSON decode error", {})
            exc = RequestValidationError([{**error, "ctx": {"error": str(exc.detail)}}])
        if isinstance(exc, RequestValidationError):
            return Response({"detail": exc.errors}, status=422)
        return super().handle_error(exc, context)

    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        if error.status in (400, 422):  # a value the service refused: pydantic would say 422
            field = (error.param or "").split(".")[0]
            loc = [field] if field in WRITABLE else []
            data = self.request.data if isinstance(self.request.data, dict) else {}
            value = data.get(field) if loc else None
            return Response({"detail": [problem(loc, error.code, error.message, value)]}, status=422)
        status = 500 if error.status >= 500 else error.status
        return Response({"detail": DETAILS.get(status, error.message)}, status=status)

    @extend_schema(
        operation_id="chatthread_update",
        summary="Update Thread",
        description="Set `title`, replace `tags` and set `isArchived` (`null` leaves a field as it is). "
        "Errors in FastAPI's shapes: 422 `{detail: [...]}`, otherwise `{detail}`.",
        parameters=[OpenApiParameter("thread_id", str, OpenApiParameter.PATH, required=True)],
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "title": OPTIONAL_STRING,
                    "tags": {"type": "array", "items": STRING, "nullable": True},
                    "isArchived": {"type": "boolean", "nullable": True},
                },
            }
        },
        responses={
            200: CHAT_THREAD,
            422: VALIDATION_ERROR,
            **{status: DETAIL for status in (401, 403, 404)},
        },
    )
    def patch(self, request, thread_id):
        thread = services.thread_update(
            org=request.user.organization,
            thread_id=thread_id,
            patch=parse(request.data),
            actor=request.user.actor,
            fields=WRITABLE,
        )
        return Response(render(thread))
