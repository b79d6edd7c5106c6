"""Output shapes of the webhook routes, and request shapes for the OpenAPI document only.

Writes go through ``threads.webhooks.services``, never through ``serializer.save()``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from threads.api.serializers import _constant

from .models import Delivery, WebhookEndpoint
from .services import ACTIONS, MAX_DESCRIPTION

EndpointObject = _constant("webhook_endpoint")


class WebhookEndpointSerializer(serializers.ModelSerializer):
    object = EndpointObject()
    actions = serializers.ListField(child=serializers.ChoiceField(choices=ACTIONS))
    isActive = serializers.BooleanField(source="is_active")
    disabledReason = serializers.SerializerMethodField(
        help_text="Why the worker disabled the endpoint (it kept failing); null otherwise. Re-enable with isActive."
    )
    failingSince = serializers.DateTimeField(
        source="failing_since", allow_null=True, help_text="Since when every attempt has failed; null when healthy."
    )
    nextProbeAt = serializers.DateTimeField(
        source="next_probe_at",
        allow_null=True,
        help_text="While the circuit is open: when the next single attempt (the probe) is made.",
    )
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "object",
            "url",
            "actions",
            "description",
            "isActive",
            "disabledReason",
            "failingSince",
            "nextProbeAt",
            "createdAt",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True})
    def get_disabledReason(self, endpoint: WebhookEndpoint) -> str | None:  # noqa: N802 - the field's name
        return endpoint.disabled_reason or None


class EndpointStateSerializer(WebhookEndpointSerializer):
    """The endpoint's state, above its deliveries."""

    class Meta(WebhookEndpointSerializer.Meta):
        fields = ["id", "isActive", "disabledReason", "failingSince", "nextProbeAt"]
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="`whsec_…`: shown only in this answer. Keep it to verify signatures.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


@extend_schema_field({"type": "string", "example": "msg_42"})
class MessageIdField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, delivery: Delivery) -> str:
        return delivery.message_id


class DeliverySerializer(serializers.ModelSerializer):
    id = MessageIdField(help_text="The `webhook-id` header of every attempt of this delivery.")
    eventId = serializers.IntegerField(source="event_id", allow_null=True, help_text="None for a test event.")
    lastStatusCode = serializers.IntegerField(source="last_status_code", allow_null=True)
    lastError = serializers.CharField(source="last_error")
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)
    deliveredAt = serializers.DateTimeField(source="delivered_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "eventId",
            "status",
            "attempts",
            "lastStatusCode",
            "lastError",
            "nextAttemptAt",
            "deliveredAt",
            "createdAt",
        ]
        read_only_fields = fields


class WebhookPatchRequest(serializers.Serializer):
    url = serializers.URLField(max_length=2048, required=False, help_text="http(s), to a public address.")
    actions = serializers.ListField(
        child=serializers.ChoiceField(choices=ACTIONS),
        required=False,
        allow_null=True,
        help_text="Event actions to send; empty or absent: all.",
    )
    description = serializers.CharField(max_length=MAX_DESCRIPTION, required=False, allow_null=True, allow_blank=True)
    isActive = serializers.BooleanField(required=False)


class WebhookCreateRequest(WebhookPatchRequest):
    url = serializers.URLField(max_length=2048, help_text="http(s), to a public address.")
