"""Every write to webhook endpoints, and the operator's retry and test event.

Endpoints are scoped to an organization: another organization's endpoint is not found.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from threads import feed
from threads.errors import ThreadError, invalid
from threads.models import Event, Organization

from . import safety
from .models import Delivery, WebhookEndpoint

ACTIONS = tuple(value for value, _ in Event.Action.choices)
WRITABLE = {"url": "url", "actions": "actions", "description": "description", "isActive": "is_active"}
MAX_DESCRIPTION = 500
SECRET_BYTES = 32
# After a rotation the previous secret keeps signing this long, so that receivers can switch.
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def parse(data: Any, *, creating: bool) -> dict[str, Any]:
    """A request body as model attributes, or the error for its first bad field."""
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    unknown = sorted(set(data) - set(WRITABLE))
    if unknown:
        raise invalid(f"Unknown or read-only field '{unknown[0]}'.", unknown[0])
    if creating and "url" not in data:
        raise invalid("'url' is required.", "url")
    values: dict[str, Any] = {}
    if "url" in data:
        values["url"] = safety.check_url(data["url"])
    if "actions" in data:
        actions = data["actions"] or []
        if not isinstance(actions, list) or any(action not in ACTIONS for action in actions):
            raise invalid(f"'actions' must be a list of: {', '.join(ACTIONS)}.", "actions")
        values["actions"] = list(dict.fromkeys(actions))
    if "description" in data:
        description = data["description"] or ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION or "\x00" in description:
            raise invalid(f"'description' must be a string of at most {MAX_DESCRIPTION} characters.", "description")
        values["description"] = description
    if "isActive" in data:
        if not isinstance(data["isActive"], bool):
            raise invalid("'isActive' must be true or false.", "isActive")
        values["is_active"] = data["isActive"]
    return values


def endpoint_qs(org: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=org)


def endpoint_get(org: Organization, endpoint_id: Any, *, lock: bool = False) -> WebhookEndpoint:
    """The endpoint, or ``not_found`` for a non-UUID id or another organization's endpoint."""
    try:
        pk = uuid.UUID(str(endpoint_id))
    except ValueError:
        raise _not_found() from None
    endpoints = WebhookEndpoint.objects.select_for_update() if lock else WebhookEndpoint.objects
    endpoint = endpoints.filter(organization=org, pk=pk).first()
    if endpoint is None:
        raise _not_found()
    return endpoint


def _not_found() -> ThreadError:
    return ThreadError("not_found", "Webhook endpoint not found.")


def _start_feed_now(endpoint: WebhookEndpoint) -> None:
    """Deliver only the events committed from now on."""
    endpoint.feed_txid, endpoint.feed_id = feed.head()


def endpoint_create(*, org: Organization, data: Any) -> WebhookEndpoint:
    """Create an endpoint from ``{url, actions?, description?, isActive?}``. Its ``secret`` is
    returned here and by ``endpoint_rotate_secret`` only; it receives the events committed after
    this moment."""
    values = parse(data, creating=True)
    now = timezone.now()
    endpoint = WebhookEndpoint(organization=org, secret=new_secret(), created_at=now, updated_at=now, **values)
    _start_feed_now(endpoint)
    endpoint.save(force_insert=True)
    return endpoint


def endpoint_update(*, org: Organization, endpoint_id: Any, data: Any) -> WebhookEndpoint:
    """Set the fields named (``url``, ``actions``, ``description``, ``isActive``). An endpoint
    made active again receives the events committed from then on, not those it missed; its
    deliveries still pending are due at once, its circuit is closed and its ``disabled_reason``
    cleared."""
    values = parse(data, creating=False)
    with transaction.atomic():
        endpoint = endpoint_get(org, endpoint_id, lock=True)
        changed = [attr for attr, value in values.items() if getattr(endpoint, attr) != value]
        if not changed:
            return endpoint
        for attr in changed:
            setattr(endpoint, attr, values[attr])
        fields = [*changed, "updated_at"]
        if "is_active" in changed and endpoint.is_active:
            _start_feed_now(endpoint)
            fields += ["feed_txid", "feed_id", *_close_breaker(endpoint)]
        endpoint.updated_at = timezone.now()
        endpoint.save(update_fields=fields)
        if "is_active" in changed and endpoint.is_active:  # its backlog is due at once
            endpoint.deliveries.filter(status=Delivery.Status.PENDING, leased_until__isnull=True).update(
                next_attempt_at=endpoint.updated_at
            )
    return endpoint


def _close_breaker(endpoint: WebhookEndpoint) -> list[str]:
    """Re-enabled: a fresh start, its reason for being disabled cleared (the fields changed)."""
    endpoint.consecutive_failures, endpoint.failing_since, endpoint.next_probe_at = 0, None, None
    endpoint.disabled_reason, endpoint.disabled_at = "", None
    return ["consecutive_failures", "failing_since", "next_probe_at", "disabled_reason", "disabled_at"]


def endpoint_enable(*, org: Organization, endpoint_id: Any) -> WebhookEndpoint:
    """Make the endpoint active again (as ``PATCH {"isActive": true}``): the admin's action."""
    return endpoint_update(org=org, endpoint_id=endpoint_id, data={"isActive": True})


def endpoint_delete(*, org: Organization, endpoint_id: Any) -> None:
    endpoint_get(org, endpoint_id).delete()


def endpoint_rotate_secret(*, org: Organization, endpoint_id: Any) -> WebhookEndpoint:
    """A new secret; the one it replaces still signs (beside it) for ``ROTATION_OVERLAP``."""
    with transaction.atomic():
        endpoint = endpoint_get(org, endpoint_id, lock=True)
        now = timezone.now()
        endpoint.previous_secret, endpoint.secret = endpoint.secret, new_secret()
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.updated_at = now
        endpoint.save(update_fields=["previous_secret", "secret", "previous_secret_expires_at", "updated_at"])
    return endpoint


def delivery_retry(delivery: Delivery) -> bool:
    """Make a failed delivery due now (one more attempt; the schedule is not restarted)."""
    return bool(
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.FAILED).update(
            status=Delivery.Status.PENDING, next_attempt_at=timezone.now()
        )
    )


def send_test_event(endpoint: WebhookEndpoint) -> Delivery:
    """A ``webhook.test`` message for the worker to send now, recorded like any delivery."""
    now = timezone.now()
    return Delivery.objects.create(endpoint=endpoint, event=None, next_attempt_at=now, created_at=now)
