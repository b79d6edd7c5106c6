"""Webhook endpoints of an organization and the deliveries of its change feed to them.

No save() overrides and no signals: every write goes through ``threads.webhooks.services`` or the
delivery worker (``threads.webhooks.worker``).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from threads.models import Event, Organization


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    actions = models.JSONField(default=list, blank=True, help_text="Event actions to send; empty: all.")
    description = models.CharField(max_length=500, blank=True, default="")
    is_active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100)
    # After a rotation the previous secret signs too, until this time.
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # The change-feed position (threads.feed.Position) up to which deliveries have been made.
    feed_txid = models.BigIntegerField(default=0)
    feed_id = models.BigIntegerField(default=0)
    # The circuit breaker (threads.webhooks.breaker): failed attempts in a row, since when, and
    # while the circuit is open the time of the next probe (one attempt at a time until one works).
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    # Set when the worker disabled the endpoint (failing for longer than WEBHOOK_DISABLE_AFTER).
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "webhook endpoint"
        indexes = [models.Index(fields=["organization", "-created_at", "-id"], name="webhook_org_created")]

    def __str__(self) -> str:
        return self.url

    def secrets(self, now) -> list[str]:
        """The secrets that sign a message sent now: the current one, and the previous one during
        the overlap after a rotation."""
        expires = self.previous_secret_expires_at
        keep_previous = self.previous_secret and expires is not None and now < expires
        return [self.secret, self.previous_secret] if keep_previous else [self.secret]


class Delivery(models.Model):
    """One event for one endpoint, attempted until a 2xx or the last retry.

    ``next_attempt_at`` is also the lease: a worker that claims a delivery moves it past the end of
    the attempt it is making, so that if the worker dies the delivery becomes due again by itself.
    ``leased_until`` marks the attempt in flight (the same time, cleared when the outcome is
    recorded): the attempts in flight to an endpoint are its deliveries leased until a later time.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # None: a test event sent from the admin.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="delivery_endpoint_event")]
        indexes = [
            models.Index(fields=["endpoint", "-id"], name="delivery_endpoint_newest"),
            # An endpoint's due deliveries, oldest first; and its attempts in flight.
            models.Index(
                fields=["endpoint", "next_attempt_at", "id"], condition=Q(status="pending"), name="delivery_due"
            ),
            models.Index(
                fields=["endpoint", "leased_until"],
                condition=Q(status="pending", leased_until__isnull=False),
                name="delivery_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return self.message_id

    @property
    def message_id(self) -> str:
        """The ``webhook-id`` header: the same for every attempt of this delivery."""
        return f"msg_{self.pk}"
