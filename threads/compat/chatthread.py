"""Seed 002 (FastAPI chat threads): ``PATCH /api/chat/threads/{thread_id}``.

``{title?, tags?, isArchived?}`` where ``null`` leaves a field as it is; answers a ``ChatThread``.
The body is read and validated exactly as FastAPI with pydantic v2 does it — the seed's own
``ThreadUpdateRequest`` model, ``ValidationError.errors()`` rendered as FastAPI's default handler
renders them — so a client of the seed is told about a bad body in the same words. What pydantic
accepts goes to ``services.thread_update``; a value the rules refuse is one more 422 entry.

Unknown fields are refused (pydantic's own ``extra_forbidden``, as with ``extra="forbid"``) rather
than ignored as a default pydantic model would: this service rejects unknown fields everywhere,
and a client that sends a field this surface cannot store should hear so.
"""

from __future__ import annotations

import email.message
import json
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticUndefined
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from .. import services
from ..errors import ThreadError
from ..merge import format_datetime
from .base import CompatView

WRITABLE = frozenset({"title", "tags", "isArchived"})
DETAILS = {
    400: "There was an error parsing the body",
    401: "Not authenticated",
    404: "Thread not found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


class ThreadUpdateRequest(BaseModel):
    """The seed's request model, field for field (each may be absent or null)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    tags: list[str] | None = None
    isArchived: bool | None = None


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
    """FastAPI's 422: every problem of the body at once, each located in the body."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


def is_json(content_type: str) -> bool:
    """FastAPI's test of the media type: ``application/json`` or ``application/…+json``."""
    header = email.message.Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def read_body(request) -> Any:
    """The body as FastAPI hands it to pydantic: nothing when empty, the decoded JSON for a JSON
    media type, else the raw bytes (which no model accepts).

    Malformed JSON is FastAPI's ``json_invalid`` 422; a body FastAPI cannot read at all (not
    UTF-8, a 5,000-digit number, nested too deep) is its 400 (``ParseError`` here), and so is one
    it would answer with a 500: a number out of JSON's range (``NaN``, ``1e400``) or an unpaired
    UTF-16 surrogate escape, which it can neither render nor store.
    """
    raw = request.body
    if not raw:
        return PydanticUndefined
    try:
        if not is_json(request.content_type):
            raw.decode()  # the text is the error's input
            return raw
        data = json.loads(raw)  # what Starlette's ``request.json()`` does
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ["body", exc.pos], "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None
    except (ValueError, RecursionError):
        raise ParseError() from None
    return data


def validate(body: Any) -> ThreadUpdateRequest:
    """The body validated as FastAPI validates a required body model: its errors are pydantic's
    ``errors()`` without documentation urls, located under ``"body"``; no body is ``missing``."""
    try:
        if body is PydanticUndefined:
            missing = InitErrorDetails(type="missing", loc=(), input=None)
            raise ValidationError.from_exception_data("Field required", [missing])
        return ThreadUpdateRequest.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**error, "loc": ["body", *error["loc"]]} for error in errors]) from None


def refused(error: ThreadError, body: dict[str, Any]) -> dict[str, Any]:
    """A value pydantic accepted and the rules refuse, as one more 422 entry typed by its code."""
    field = (error.param or "").split(".")[0]
    loc = [field] if field in WRITABLE else []
    return {"type": error.code, "loc": ["body", *loc], "msg": error.message, "input": body[field] if loc else body}


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
        if isinstance(exc, RequestValidationError):
            return Response({"detail": exc.errors}, status=422)
        if isinstance(exc, ParseError):
            return Response({"detail": DETAILS[400]}, status=400)
        return super().handle_error(exc, context)

    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        status = 500 if error.status >= 500 else error.status
        return Response({"detail": DETAILS.get(status, error.message)}, status=status)

    @extend_schema(
        operation_id="chatthread_update",
        summary="Update Thread",
        description="Set `title`, replace `tags` and set `isArchived` (`null` leaves a field as it is), "
        "validated exactly as FastAPI with pydantic v2: 422 `{detail: [...]}`, otherwise `{detail}`.",
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
            **{status: DETAIL for status in (400, 401, 403, 404)},
        },
    )
    def patch(self, request, thread_id):
        body = read_body(request)
        update = validate(body)
        try:
            thread = services.thread_update(
                org=request.user.organization,
                thread_id=thread_id,
                patch=update.model_dump(exclude_none=True),
                actor=request.user.actor,
                fields=WRITABLE,
            )
        except ThreadError as error:
            if error.status not in (400, 422):
                raise
            raise RequestValidationError([refused(error, body)]) from error
        return Response(render(thread))
