"""Output shapes of the canonical API, and request shapes for the OpenAPI document only.

Writes never go through ``serializer.save()``: the services own the merge rules.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..merge import format_datetime
from ..models import Event, Message, Thread

METADATA_VALUE_SCHEMA = {
    "oneOf": [
        {"type": "string", "maxLength": 512},
        {"type": "array", "items": {"type": "string", "maxLength": 512}, "maxItems": 16},
    ]
}


@extend_schema_field({"type": "object", "additionalProperties": METADATA_VALUE_SCHEMA, "maxProperties": 16})
class MetadataField(serializers.JSONField):
    pass


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4096}, "maxProperties": 64}
)
class VariablesField(serializers.JSONField):
    pass


def _constant(value: str):
    @extend_schema_field({"type": "string", "enum": [value]})
    class Constant(serializers.Field):
        def __init__(self, **kwargs):
            super().__init__(source="*", read_only=True, **kwargs)

        def to_representation(self, _):
            return value

    return Constant


ThreadObject = _constant("thread")
MessageObject = _constant("thread.message")


class ThreadSerializer(serializers.ModelSerializer):
    object = ThreadObject()
    metadata = MetadataField()
    variables = VariablesField()
    tags = serializers.ListField(child=serializers.CharField())
    isArchived = serializers.BooleanField(source="is_archived")
    isActive = serializers.BooleanField(source="is_active")
    visibleInUi = serializers.BooleanField(source="visible_in_ui")
    isPinned = serializers.BooleanField(source="is_pinned")
    projectId = serializers.CharField(source="project_id", allow_null=True)
    assistantId = serializers.CharField(source="assistant_id", allow_null=True)
    userId = serializers.CharField(source="user_id", allow_null=True)
    organizationId = serializers.UUIDField(source="organization_id")
    messageCount = serializers.IntegerField(source="message_count")
    lastActivityAt = serializers.DateTimeField(source="last_activity_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Thread
        fields = [
            "id",
            "object",
            "title",
            "metadata",
            "variables",
            "tags",
            "isArchived",
            "isActive",
            "visibleInUi",
            "isPinned",
            "projectId",
            "assistantId",
            "userId",
            "organizationId",
            "messageCount",
            "lastActivityAt",
            "createdAt",
            "updatedAt",
            "version",
        ]
        read_only_fields = fields

    def to_representation(self, thread: Thread) -> dict:
        """The fields above, written out by hand: the same output as DRF's field-by-field
        rendering (a test compares the two), at a fraction of its cost on every PATCH and list."""
        return {
            "id": str(thread.id),
            "object": "thread",
            "title": thread.title,
            "metadata": thread.metadata,
            "variables": thread.variables,
            "tags": [str(tag) for tag in thread.tags],
            "isArchived": thread.is_archived,
            "isActive": thread.is_active,
            "visibleInUi": thread.visible_in_ui,
            "isPinned": thread.is_pinned,
            "projectId": thread.project_id,
            "assistantId": thread.assistant_id,
            "userId": thread.user_id,
            "organizationId": str(thread.organization_id),
            "messageCount": thread.message_count,
            "lastActivityAt": format_datetime(thread.last_activity_at),
            "createdAt": format_datetime(thread.created_at),
            "updatedAt": format_datetime(thread.updated_at),
            "version": thread.version,
        }


def _column(name: str) -> str:
    return f'"{Thread._meta.db_table}"."{name}"'


def _utc(name: str) -> str:
    """``format_datetime`` in SQL: ISO-8601 in UTC with ``Z``, no fraction when it is zero."""
    text = f"to_char({_column(name)} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    return f"replace({text}, '.000000Z', 'Z')"


def _thread_json_sql() -> str:
    """ThreadSerializer's output, rendered by PostgreSQL: one JSON text per row, which the list
    page joins as it is instead of decoding and encoding it again in Python (most of a page's
    cost). Built from the serializer's fields; tests/test_rendering_sql.py compares the two."""
    fields = ThreadSerializer().fields

    def value(name: str) -> str:
        field = fields[name]
        if isinstance(field, ThreadObject):
            return "'thread'"
        return _utc(field.source) if isinstance(field, serializers.DateTimeField) else _column(field.source)

    pairs = ", ".join(f"'{name}', {value(name)}" for name in ThreadSerializer.Meta.fields)
    return f"json_build_object({pairs})::text"


THREAD_JSON_SQL = _thread_json_sql()


def json_text(text: str) -> str:
    """A JSON text (PostgreSQL's rendering) as DRF's JSONRenderer sends one: with the two line
    separators that JavaScript would not take in a string escaped."""
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class ThreadPatchRequest(serializers.Serializer):
    """A merge PATCH: keys named are set, ``null`` removes a key, nothing else is touched."""

    title = serializers.CharField(max_length=256, required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField(required=False, allow_null=True)
    variables = VariablesField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), max_length=32, required=False)
    addTags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    removeTags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    isArchived = serializers.BooleanField(required=False)
    isActive = serializers.BooleanField(required=False)
    visibleInUi = serializers.BooleanField(required=False)
    isPinned = serializers.BooleanField(required=False)
    projectId = serializers.CharField(max_length=128, required=False, allow_null=True)
    assistantId = serializers.CharField(max_length=128, required=False, allow_null=True)
    userId = serializers.CharField(max_length=128, required=False, allow_null=True)


class ThreadCreateRequest(ThreadPatchRequest):
    id = serializers.UUIDField(required=False, help_text="Optional client-supplied id.")


class MessageSerializer(serializers.ModelSerializer):
    object = MessageObject()
    threadId = serializers.UUIDField(source="thread_id")
    metadata = MetadataField()
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Message
        fields = ["id", "object", "threadId", "role", "content", "metadata", "createdAt"]
        read_only_fields = fields


class MessageCreateRequest(serializers.Serializer):
    role = serializers.ChoiceField(choices=Message.Role.choices)
    content = serializers.CharField(max_length=100_000, allow_blank=True)
    metadata = MetadataField(required=False)


class ActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(source="actor_type", choices=Event.ActorType.choices)
    id = serializers.CharField(source="actor_id")
    name = serializers.CharField(source="actor_name")


class EventSerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    actor = ActorSerializer(source="*")
    changes = serializers.JSONField()

    class Meta:
        model = Event
        fields = ["id", "createdAt", "action", "version", "actor", "changes"]
        read_only_fields = fields


class FeedEventSerializer(EventSerializer):
    threadId = serializers.UUIDField(source="thread_id")

    class Meta(EventSerializer.Meta):
        fields = ["id", "threadId", "createdAt", "action", "version", "actor", "changes"]
        read_only_fields = fields


class FeedPage(serializers.Serializer):
    results = FeedEventSerializer(many=True)
    nextCursor = serializers.CharField(help_text="Send it back as `after` for the next page.")
    hasMore = serializers.BooleanField()


class ChatTokenRequest(serializers.Serializer):
    ttlSeconds = serializers.IntegerField(min_value=60, max_value=86_400, required=False, default=3600)


class ChatTokenResponse(serializers.Serializer):
    token = serializers.CharField()
    threadId = serializers.UUIDField()
    expiresAt = serializers.DateTimeField()


class ErrorDetail(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(required=False)


class ErrorResponse(serializers.Serializer):
    error = ErrorDetail()


def page_of(serializer_class):
    class Page(serializers.Serializer):
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = serializer_class(many=True)

    Page.__name__ = f"Paginated{serializer_class.__name__.removesuffix('Serializer')}List"
    return Page
