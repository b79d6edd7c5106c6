"""OpenAI's Conversations API at ``/v1/conversations…``, as the ``openai`` SDK calls it (base URL
``http://HOST/v1``).

A conversation is a thread (``conv_`` + its UUID in hex), its items are the thread's messages in
order (``msg_`` + the message's UUID in hex). Update *replaces* the metadata map, as OpenAI's does:
the service turns the new map into the merge patch from the stored one under the row lock, so the
limits, history and concurrency are the canonical ones. Errors are OpenAI's envelope, every key
present, with OpenAI's codes for the metadata limits. docs/api.md lists every deviation.
"""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from .. import selectors, services
from ..errors import ThreadError
from .base import CompatView
from .openai_shapes import (
    CODES,
    ITEMS_MAX,
    LIST_DEFAULT,
    LIST_MAX,
    ROLES,
    OpenAIError,
    check_body,
    check_metadata,
    conversation,
    fail,
    item,
    item_list,
    item_pk,
    locate,
    parse_items,
    parse_limit,
    thread_id_of,
)

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 512}, "maxProperties": 16}
CONVERSATION = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["conversation"]},
        "created_at": {"type": "integer"},
        "metadata": STRING_MAP,
    },
    "required": ["id", "object", "created_at", "metadata"],
}
PART = {"type": "object", "properties": {"type": {"type": "string"}, "text": {"type": "string"}}}
ITEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["message"]},
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["completed"]},
        "role": {"type": "string"},
        "content": {"type": "array", "items": PART},
    },
    "required": ["type", "id", "status", "role", "content"],
}
NULLABLE_STRING = {"type": "string", "nullable": True}
ITEM_LIST = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {"type": "array", "items": ITEM},
        "first_id": NULLABLE_STRING,
        "last_id": NULLABLE_STRING,
        "has_more": {"type": "boolean"},
    },
    "required": ["object", "data", "first_id", "last_id", "has_more"],
}
INPUT_ITEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["message"]},
        "role": {"type": "string", "enum": list(ROLES)},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": PART, "minItems": 1, "maxItems": 1}]},
    },
    "required": ["role", "content"],
}
INPUT_ITEMS = {"type": "array", "items": INPUT_ITEM, "maxItems": ITEMS_MAX}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": NULLABLE_STRING,
                "code": NULLABLE_STRING,
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}
ERRORS = {status: ERROR for status in (400, 401, 403, 404, 411, 413, 415, 429, 503)}
CONVERSATION_ID = OpenApiParameter(
    "conversation_id", str, OpenApiParameter.PATH, required=True, description="`conv_` and 32 hexadecimal digits."
)
ITEM_ID = OpenApiParameter(
    "item_id", str, OpenApiParameter.PATH, required=True, description="`msg_` and 32 hexadecimal digits."
)


class OpenAIView(CompatView):
    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        status = 400 if error.status in (400, 422) else error.status
        message, param = error.message, error.param
        if status == 404:
            message, param, code = self.not_found_message(error), None, None
        elif isinstance(error, OpenAIError):
            code = error.openai_code
        elif error.code == "metadata_key_invalid" and param == "metadata.":
            code = "empty_string"
        else:
            code = CODES.get(error.code) or {
                "invalid_parameters": "invalid_value",
                "authentication_required": None,
                "invalid_token": "invalid_api_key",
                "rate_limited": "rate_limit_exceeded",
            }.get(error.code, error.code)
        kind = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
        return Response({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)

    def not_found_message(self, error: ThreadError) -> str:
        kwargs = self.kwargs or {}
        if error.code == "not_found" and "item_id" in kwargs:
            return f"Item with id '{kwargs['item_id']}' not found."
        if "conversation_id" in kwargs:
            return f"Conversation with id '{kwargs['conversation_id']}' not found."
        return "Not found."

    def items(self, conversation_id: str):
        return selectors.thread_messages(self.request.user.organization, thread_id_of(conversation_id))


class ConversationsView(OpenAIView):
    @extend_schema(
        operation_id="openai_conversations_create",
        summary="Create a conversation",
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "items": {**INPUT_ITEMS, "nullable": True},
                    "metadata": {**STRING_MAP, "nullable": True},
                    "safety_identifier": {"type": "string", "nullable": True, "maxLength": 64},
                },
            }
        },
        responses={200: CONVERSATION, **ERRORS},
    )
    def post(self, request):
        body = check_body(request.data, {"items", "metadata", "safety_identifier"})
        check_metadata(body.get("metadata"))
        if not isinstance(body.get("safety_identifier"), str | None):
            raise fail("Invalid type for 'safety_identifier': expected a string.", "safety_identifier", "invalid_type")
        messages = parse_items(body.get("items"), required=False)
        data = {"metadata": body["metadata"]} if body.get("metadata") is not None else {}
        try:
            thread = services.thread_create(
                org=request.user.organization, data=data, actor=request.user.actor, messages=messages
            )
        except ThreadError as error:
            raise locate(error, messages) if error.param in ("content", None) else error from None
        return Response(conversation(thread))


class ConversationView(OpenAIView):
    @extend_schema(
        operation_id="openai_conversations_retrieve",
        summary="Get a conversation",
        parameters=[CONVERSATION_ID],
        responses={200: CONVERSATION, **ERRORS},
    )
    def get(self, request, conversation_id):
        return Response(conversation(selectors.thread_get(request.user.organization, thread_id_of(conversation_id))))

    @extend_schema(
        operation_id="openai_conversations_update",
        summary="Replace a conversation's metadata",
        parameters=[CONVERSATION_ID],
        request={
            "application/json": {
                "type": "object",
                "properties": {"metadata": {**STRING_MAP, "nullable": True}},
                "required": ["metadata"],
            }
        },
        responses={200: CONVERSATION, **ERRORS},
    )
    def post(self, request, conversation_id):
        body = check_body(request.data, {"metadata"})
        if "metadata" not in body:
            raise fail("Missing required parameter: 'metadata'.", "metadata", "missing_required_parameter")
        check_metadata(body["metadata"])
        thread = services.thread_update(
            org=request.user.organization,
            thread_id=thread_id_of(conversation_id),
            patch=body,
            actor=request.user.actor,
            fields=frozenset({"metadata"}),
            replace=frozenset({"metadata"}),
        )
        return Response(conversation(thread))

    @extend_schema(
        operation_id="openai_conversations_delete",
        summary="Delete a conversation",
        parameters=[CONVERSATION_ID],
        responses={
            200: {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "enum": ["conversation.deleted"]},
                    "deleted": {"type": "boolean"},
                },
                "required": ["id", "object", "deleted"],
            },
            **ERRORS,
        },
    )
    def delete(self, request, conversation_id):
        thread_id = thread_id_of(conversation_id)
        services.thread_delete(org=request.user.organization, thread_id=thread_id, actor=request.user.actor)
        return Response({"id": f"conv_{thread_id.hex}", "object": "conversation.deleted", "deleted": True})


class ItemsView(OpenAIView):
    @extend_schema(
        operation_id="openai_conversation_items_list",
        summary="List a conversation's items",
        parameters=[
            CONVERSATION_ID,
            OpenApiParameter("limit", int, description=f"1 to {LIST_MAX}, default {LIST_DEFAULT}."),
            OpenApiParameter("order", str, enum=["asc", "desc"], description="Default `desc` (newest first)."),
            OpenApiParameter("after", str, description="An item id: the items after it in this order."),
            OpenApiParameter("include", str, many=True, description="Accepted and ignored (text items only)."),
        ],
        responses={200: ITEM_LIST, **ERRORS},
    )
    def get(self, request, conversation_id):
        params = request.query_params
        limit, order = parse_limit(params.get("limit")), params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise fail("Invalid value for 'order': expected 'asc' or 'desc'.", "order")
        messages = self.items(conversation_id)
        sign = "" if order == "asc" else "-"
        if params.get("after"):
            anchor = messages.filter(pk=item_pk(params["after"], "after")).values("created_at", "id").first()
            if anchor is None:
                raise fail(f"Invalid 'after': no item '{params['after']}' in this conversation.", "after")
            op = "gt" if order == "asc" else "lt"
            messages = messages.filter(
                Q(**{f"created_at__{op}": anchor["created_at"]})
                | Q(created_at=anchor["created_at"], **{f"id__{op}": anchor["id"]})
            )
        rows = list(messages.order_by(f"{sign}created_at", f"{sign}id")[: limit + 1])
        return Response(item_list(rows[:limit], has_more=len(rows) > limit))

    @extend_schema(
        operation_id="openai_conversation_items_create",
        summary="Add items to a conversation",
        parameters=[CONVERSATION_ID, OpenApiParameter("include", str, many=True, description="Accepted and ignored.")],
        request={"application/json": {"type": "object", "properties": {"items": INPUT_ITEMS}, "required": ["items"]}},
        responses={200: ITEM_LIST, **ERRORS},
    )
    def post(self, request, conversation_id):
        body = check_body(request.data, {"items"})
        messages = parse_items(body.get("items"), required=True)
        try:
            added = services.messages_add(
                org=request.user.organization,
                thread_id=thread_id_of(conversation_id),
                items=messages,
                actor=request.user.actor,
            )
        except ThreadError as error:
            raise locate(error, messages) if error.param == "content" else error from None
        return Response(item_list(added))


class ItemView(OpenAIView):
    @extend_schema(
        operation_id="openai_conversation_items_retrieve",
        summary="Get an item",
        parameters=[CONVERSATION_ID, ITEM_ID, OpenApiParameter("include", str, many=True)],
        responses={200: ITEM, **ERRORS},
    )
    def get(self, request, conversation_id, item_id):
        message = self.items(conversation_id).filter(pk=item_pk(item_id)).first()
        if message is None:
            raise ThreadError("not_found", "not found")
        return Response(item(message))

    @extend_schema(
        operation_id="openai_conversation_items_delete",
        summary="Delete an item",
        description="Answers the conversation, as OpenAI's does.",
        parameters=[CONVERSATION_ID, ITEM_ID],
        responses={200: CONVERSATION, **ERRORS},
    )
    def delete(self, request, conversation_id, item_id):
        thread = services.message_delete(
            org=request.user.organization,
            thread_id=thread_id_of(conversation_id),
            message_id=item_pk(item_id),
            actor=request.user.actor,
        )
        return Response(conversation(thread))
