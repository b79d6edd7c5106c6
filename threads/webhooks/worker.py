"""The delivery worker: from each active endpoint's place in the change feed to HTTP attempts.

Two steps, each safe with any number of workers on any number of machines:

- ``enqueue``: per active endpoint, in one transaction with the endpoint's row locked (``SKIP
  LOCKED`` on PostgreSQL: another worker busy with it is not waited for), read the feed beyond the
  endpoint's position, create one ``Delivery`` per wanted event and move the position on.
- ``claim`` + ``attempt``: take one due delivery (``FOR UPDATE SKIP LOCKED``) and move its
  ``next_attempt_at`` past the attempt's end (its lease) in a short transaction; make the HTTP
  request outside any transaction; record the outcome only if the lease is still this worker's.
  A worker killed at any moment leaves either an unmoved position or a lease that runs out: the
  delivery is attempted again, with the same ``webhook-id`` (at least once).

On SQLite writers take turns (immediate transactions), which gives the same guarantees.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from threads import feed
from threads.merge import format_datetime

from . import sender
from .models import Delivery, WebhookEndpoint

logger = logging.getLogger("threads.webhooks")

POLL_SECONDS = 0.5  # an event reaches its receivers within about one poll of its commit
FEED_BATCH = 500
LEASE_MARGIN_SECONDS = 5  # beyond the HTTP timeout: time to record the outcome


def enqueue() -> tuple[int, int]:
    """One feed batch for every active endpoint: (deliveries created, endpoints with more waiting)."""
    ids = WebhookEndpoint.objects.filter(is_active=True).values_list("pk", flat=True)
    results = [enqueue_endpoint(pk) for pk in list(ids)]
    return sum(created for created, _ in results), sum(more for _, more in results)


def enqueue_endpoint(pk) -> tuple[int, bool]:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update(skip_locked=True).filter(pk=pk, is_active=True).first()
        if endpoint is None:  # another worker holds it, or it is gone or inactive
            return 0, False
        position = feed.Position(endpoint.feed_txid, endpoint.feed_id)
        events, following, more = feed.read(endpoint.organization_id, position, FEED_BATCH)
        now = timezone.now()
        deliveries = [
            Delivery(endpoint=endpoint, event=event, next_attempt_at=now, created_at=now)
            for event in events
            if not endpoint.actions or event.action in endpoint.actions
        ]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        if following != position:
            WebhookEndpoint.objects.filter(pk=pk).update(feed_txid=following.txid, feed_id=following.id)
    return len(deliveries), more


def claim() -> Delivery | None:
    """The most overdue delivery of an active endpoint, leased to this worker, or None."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "event")
            .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now, endpoint__is_active=True)
            .order_by("next_attempt_at", "id")
            .first()
        )
        if delivery is None:
            return None
        lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
        Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1, next_attempt_at=lease)
    delivery.attempts += 1
    return delivery


def payload(delivery: Delivery) -> dict:
    event = delivery.event
    if event is None:
        return {
            "type": "webhook.test",
            "timestamp": format_datetime(delivery.created_at),
            "data": {"endpointId": str(delivery.endpoint_id), "message": "A test event."},
        }
    return {
        "type": f"thread.{event.action}",
        "timestamp": format_datetime(event.created_at),
        "data": feed.event_json(event),
    }


def attempt(delivery: Delivery) -> sender.Outcome:
    """Send the claimed delivery once and record the outcome (success, retry later, or failed)."""
    endpoint = delivery.endpoint
    body = sender.encode(payload(delivery))
    now = timezone.now()
    headers = {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sender.signature(endpoint.secrets(now), delivery.message_id, now, body),
    }
    outcome = sender.post(endpoint.url, body, headers, settings.WEBHOOK_TIMEOUT_SECONDS)
    record(delivery, outcome)
    return outcome


def record(delivery: Delivery, outcome: sender.Outcome) -> None:
    now = timezone.now()
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    fields = {"last_status_code": outcome.status_code, "last_error": outcome.error[:500]}
    if outcome.ok:
        fields.update(status=Delivery.Status.SUCCEEDED, delivered_at=now, next_attempt_at=None)
    elif delivery.attempts > len(schedule):
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=now + timedelta(seconds=schedule[delivery.attempts - 1]))
    # Only while the lease is ours: after it ran out another worker may have attempted it again.
    Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=Delivery.Status.PENDING).update(**fields)


def run(stop: threading.Event, *, once: bool = False, concurrency: int = 4) -> None:
    """Deliver until ``stop`` is set; with ``once``, make every attempt due now and return.

    The calling thread reads the feed; ``concurrency`` threads each claim and attempt one delivery
    at a time, so that a slow receiver holds up only one of them. ``stop`` lets each finish the
    attempt in flight.
    """
    if once:
        while (_guarded(enqueue) or (0, 0))[1]:
            pass
    wake = threading.Event()  # new deliveries: idle senders claim them now, not at their next poll
    senders = [
        threading.Thread(target=_send_loop, args=(stop, wake, once), name=f"webhook-sender-{n}")
        for n in range(concurrency)
    ]
    for thread in senders:
        thread.start()
    while not once and not stop.is_set():
        created, more = _guarded(enqueue) or (0, 0)
        if created:
            wake.set()
        if not more:
            stop.wait(POLL_SECONDS)
    wake.set()
    for thread in senders:
        thread.join()
    connection.close()


def _send_loop(stop: threading.Event, wake: threading.Event, once: bool) -> None:
    try:
        while not stop.is_set():
            delivery = _guarded(claim)
            if delivery is not None:
                _guarded(lambda: attempt(delivery))  # noqa: B023 - called at once
            elif once:
                return
            else:
                wake.wait(POLL_SECONDS)
                wake.clear()
    finally:
        connection.close()


def _guarded(step):
    """Run one step. An error (e.g. the database restarting) is logged and the step tried again
    on the next round: the worker keeps running, and a lease it held runs out."""
    try:
        return step()
    except Exception as error:
        logger.exception("webhook worker: %s failed", getattr(step, "__name__", "a step"))
        if isinstance(error, DatabaseError):
            connection.close()
        return None
