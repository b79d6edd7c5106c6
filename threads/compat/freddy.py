"""Seed 001 (thread metadata): ``PATCH /v1/threads/{thread_id}/metadata``.

Merges ``metadata`` and sets ``visibleInUi``; answers the seed's thread object with Unix-second
times; errors are ``{"error": {message, type, code, param?}}`` as the seed documents them.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from .. import services
from ..api.serializers import METADATA_VALUE_SCHEMA, ErrorResponse
from ..errors import ThreadError
from .base import CompatView, unix

WRITABLE = frozenset({"metadata", "visibleInUi"})
NOT_FOUND = "Thread not found or access denied"

METADATA = {"type": "object", "additionalProperties": METADATA_VALUE_SCHEMA, "maxProperties": 16}
NULLABLE_STRING = {"type": "string", "nullable": True}
THREAD = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["thread"]},
        "createdAt": {"type": "integer"},
        "updatedAt": {"type": "integer"},
        "metadata": METADATA,
        "assistantId": NULLABLE_STRING,
        "organizationId": {"type": "string"},
        "userId": NULLABLE_STRING,
        "title": {"type": "string"},
        "visibleInUi": {"type": "boolean"},
        "messageCount": {"type": "integer"},
    },
}


def render(thread) -> dict:
    return {
        "id": str(thread.pk),
        "object": "thread",
        "createdAt": unix(thread.created_at),
        "updatedAt": unix(thread.updated_at),
        "metadata": thread.metadata,
        "assistantId": thread.assistant_id,
        "organizationId": str(thread.organization_id),
        "userId": thread.user_id,
        "title": thread.title,
        "visibleInUi": thread.visible_in_ui,
        "messageCount": thread.message_count,
    }


class ThreadMetadataView(CompatView):
    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        code, message = error.code, error.message
        if error.status == 404:
            code, message = "thread_not_found", NOT_FOUND
        elif error.status == 400:
            code, message = "invalid_parameters", f"Invalid request parameters: {message}"
        return Response(ThreadError(code, message, error.param).envelope(), status=error.status)

    @extend_schema(
        operation_id="freddy_thread_metadata_update",
        summary="Update thread metadata",
        description="Merge `metadata` (`null` removes a key) and set `visibleInUi`. Times are Unix "
        "seconds; errors are `{error: {message, type, code, param?}}`.",
        parameters=[OpenApiParameter("thread_id", str, OpenApiParameter.PATH, required=True)],
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "metadata": METADATA,
                    "visibleInUi": {"type": "boolean"},
                },
            }
        },
        responses={200: THREAD, **{status: ErrorResponse for status in (400, 401, 403, 404, 422)}},
    )
    def patch(self, request, thread_id):
        thread = services.thread_update(
            org=request.user.organization,
            thread_id=thread_id,
            patch=request.data,
            actor=request.user.actor,
            fields=WRITABLE,
        )
        return Response(render(thread))
