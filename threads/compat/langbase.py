"""Seed 003 (Langbase threads): ``/v1/threads`` as the ``langbase`` Python SDK calls it.

``threads.create`` → ``POST /v1/threads``, ``get``/``update``/``delete`` → ``GET``/``POST``/
``DELETE /v1/threads/{id}``, ``append``/``messages.list`` → ``POST``/``GET
/v1/threads/{id}/messages`` (a JSON list each way). Threads are ``{id, object, created_at,
metadata}`` with string metadata values; errors use the canonical envelope, which the SDK reads.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import merge, selectors, services
from ..api.serializers import ErrorResponse
from ..errors import invalid
from .base import as_strings, require_object, require_string_map, unix

ERRORS = {status: ErrorResponse for status in (400, 401, 403, 404, 422)}
PATH_ID = [OpenApiParameter("thread_id", str, OpenApiParameter.PATH, required=True)]
# Langbase message fields this service does not store: accepted only when null.
UNSTORED = ("name", "tool_call_id", "tool_calls", "attachments")

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
THREAD = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["thread"]},
        "created_at": {"type": "integer"},
        "metadata": STRING_MAP,
    },
}
MESSAGE_IN = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": list(merge.MESSAGE_ROLES)},
        "content": {"type": "string"},
        "metadata": STRING_MAP,
    },
    "required": ["role", "content"],
}
MESSAGE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "created_at": {"type": "integer"},
        "thread_id": {"type": "string"},
        "role": {"type": "string"},
        "content": {"type": "string"},
        "metadata": STRING_MAP,
        **{name: {"nullable": True} for name in UNSTORED},
    },
}
MESSAGES = {"type": "array", "items": MESSAGE}


def render_thread(thread) -> dict:
    return {
        "id": str(thread.pk),
        "object": "thread",
        "created_at": unix(thread.created_at),
        "metadata": as_strings(thread.metadata),
    }


def render_message(message) -> dict:
    return {
        "id": str(message.pk),
        "created_at": unix(message.created_at),
        "thread_id": str(message.thread_id),
        "role": message.role,
        "content": message.content,
        **dict.fromkeys(UNSTORED),
        "metadata": as_strings(message.metadata),
    }


def parse_messages(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise invalid("'messages' must be a list of messages.", "messages")
    out = []
    for item in items:
        item = require_object(item)
        for name in UNSTORED:
            if item.get(name) is not None:
                raise invalid(f"'{name}' is not supported by this service.", name)
        require_string_map(item, "metadata")
        out.append({key: value for key, value in item.items() if key not in UNSTORED})
    return out


class ThreadsView(APIView):
    @extend_schema(
        operation_id="langbase_threads_create",
        summary="Create a thread",
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "threadId": {"type": "string", "format": "uuid"},
                    "metadata": STRING_MAP,
                    "messages": {"type": "array", "items": MESSAGE_IN},
                },
            }
        },
        responses={200: THREAD, 409: ErrorResponse, **ERRORS},
    )
    def post(self, request):
        body = require_object(request.data)
        unknown = sorted(set(body) - {"threadId", "metadata", "messages"})
        if unknown:
            raise invalid(f"Unknown field '{unknown[0]}'.", unknown[0])
        require_string_map(body, "metadata")
        data = {"metadata": body["metadata"]} if "metadata" in body else {}
        if body.get("threadId") is not None:
            data["id"] = merge.parse_uuid(body["threadId"], "threadId")
        messages = parse_messages(body["messages"]) if body.get("messages") is not None else []
        thread = services.thread_create(
            org=request.user.organization, data=data, actor=request.user.actor, messages=messages
        )
        return Response(render_thread(thread))


class ThreadView(APIView):
    @extend_schema(
        operation_id="langbase_threads_retrieve",
        summary="Get a thread",
        parameters=PATH_ID,
        responses={200: THREAD, **ERRORS},
    )
    def get(self, request, thread_id):
        return Response(render_thread(selectors.thread_get(request.user.organization, thread_id)))

    @extend_schema(
        operation_id="langbase_threads_update",
        summary="Update a thread's metadata",
        parameters=PATH_ID,
        request={"application/json": {"type": "object", "properties": {"metadata": STRING_MAP}}},
        responses={200: THREAD, **ERRORS},
    )
    def post(self, request, thread_id):
        body = require_object(request.data)
        require_string_map(body, "metadata")
        thread = services.thread_update(
            org=request.user.organization,
            thread_id=thread_id,
            patch=body,
            actor=request.user.actor,
            fields=frozenset({"metadata"}),
        )
        return Response(render_thread(thread))

    @extend_schema(
        operation_id="langbase_threads_delete",
        summary="Delete a thread",
        parameters=PATH_ID,
        responses={
            200: {"type": "object", "properties": {"success": {"type": "boolean"}}},
            **ERRORS,
        },
    )
    def delete(self, request, thread_id):
        services.thread_delete(org=request.user.organization, thread_id=thread_id, actor=request.user.actor)
        return Response({"success": True})


class MessagesView(APIView):
    @extend_schema(
        operation_id="langbase_messages_list",
        summary="List messages",
        parameters=PATH_ID,
        responses={200: MESSAGES, **ERRORS},
    )
    def get(self, request, thread_id):
        messages = selectors.thread_messages(request.user.organization, thread_id)
        return Response([render_message(m) for m in messages.order_by("created_at", "id")])

    @extend_schema(
        operation_id="langbase_messages_append",
        summary="Append messages",
        parameters=PATH_ID,
        request={"application/json": {"type": "array", "items": MESSAGE_IN}},
        responses={200: MESSAGES, **ERRORS},
    )
    def post(self, request, thread_id):
        messages = services.messages_add(
            org=request.user.organization,
            thread_id=thread_id,
            items=parse_messages(request.data),
            actor=request.user.actor,
        )
        return Response([render_message(m) for m in messages])
