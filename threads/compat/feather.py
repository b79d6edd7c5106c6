"""Seed 000 (web chat): ``PATCH /api/v1/chat/threads/{threadId}`` with a chat token.

Merges ``metadata`` and ``variables`` (string maps) and answers
``{"thread": {threadId, metadata, variables, isActive, createdAt, lastActivityAt}}``; errors are
``{status, message, code, success: false}``.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from .. import services
from ..api.authentication import Principal
from ..errors import ThreadError, not_found
from ..merge import format_datetime
from .base import CompatView, as_strings, require_object, require_string_map

WRITABLE = frozenset({"metadata", "variables"})
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}
# Statuses this surface does not document are told as its nearest documented one.
AS_400 = (413, 415, 422)

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
NULLABLE_MAP = {**STRING_MAP, "nullable": True}
THREAD = {
    "type": "object",
    "properties": {
        "threadId": {"type": "string"},
        "metadata": NULLABLE_MAP,
        "variables": NULLABLE_MAP,
        "isActive": {"type": "boolean"},
        "createdAt": {"type": "string"},
        "lastActivityAt": {"type": "string", "nullable": True},
    },
    "required": ["threadId", "isActive", "createdAt", "lastActivityAt"],
}
ERROR = {
    "type": "object",
    "properties": {
        "status": {"type": "integer"},
        "message": {"type": "string"},
        "code": {"type": "string"},
        "success": {"type": "boolean", "enum": [False]},
    },
}


class ChatTokenForThread(BasePermission):
    """Only a chat token, and only for the thread in the path: no credential or another kind of
    credential is 401, a path that names no thread (not a UUID) 404, another thread's token 403."""

    def has_permission(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            raise NotAuthenticated()
        if not principal.is_chat_token:
            raise NotAuthenticated(
                "This route takes a chat token for the thread (POST /api/v1/threads/{id}/chat-token "
                "issues one), not an API key or a user's token."
            )
        try:
            thread_id = uuid.UUID(str(view.kwargs.get("thread_id")))
        except ValueError:
            raise not_found() from None
        if principal.thread_id != thread_id:
            raise PermissionDenied("This chat token is for another thread.")
        return True


def render(thread) -> dict:
    return {
        "thread": {
            "threadId": str(thread.pk),
            "metadata": as_strings(thread.metadata),
            "variables": thread.variables,
            "isActive": thread.is_active,
            "createdAt": format_datetime(thread.created_at),
            "lastActivityAt": format_datetime(thread.last_activity_at),
        }
    }


class ChatThreadSessionView(CompatView):
    permission_classes = [ChatTokenForThread]

    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        status = 400 if error.status in AS_400 else error.status
        if status >= 500:
            status, code, message = 500, "INTERNAL_SERVER_ERROR", "Internal server error"
        else:
            code = CODES.get(status) or HTTPStatus(status).name
            message = error.message
        body = {"status": status, "message": message, "code": code, "success": False}
        return Response(body, status=status)

    @extend_schema(
        operation_id="feather_chat_thread_update",
        summary="Update web chat thread session metadata",
        description="Merge `metadata` and `variables` (string maps; `null` removes a key). Only a chat "
        "token for this thread may call it. Errors are `{status, message, code, success: false}`.",
        parameters=[OpenApiParameter("thread_id", str, OpenApiParameter.PATH, required=True)],
        request={
            "application/json": {
                "type": "object",
                "properties": {"metadata": STRING_MAP, "variables": STRING_MAP},
            }
        },
        responses={
            200: {"type": "object", "properties": {"thread": THREAD}, "required": ["thread"]},
            **{status: ERROR for status in (400, 401, 403, 404, 500)},
        },
    )
    def patch(self, request, thread_id):
        body = require_object(request.data)
        require_string_map(body, "metadata")
        principal = request.user
        thread = services.thread_update(
            org=principal.organization,
            thread_id=thread_id,
            patch=body,
            actor=principal.actor,
            fields=WRITABLE,
        )
        return Response(render(thread))
