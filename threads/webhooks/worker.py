"""The delivery worker: from each active endpoint's place in the change feed to HTTP attempts.

Three steps, each one short transaction, each safe with any number of workers on any machines:

- ``enqueue``: for the endpoints with news (``wake.Watch``), with their rows locked (``SKIP
  LOCKED`` on PostgreSQL: another worker busy with one is not waited for), read the feed beyond
  each one's position (once for all endpoints of an organization at the same position), create one
  ``Delivery`` per wanted event and move the positions on.
- ``claim``: with the endpoints that have due deliveries locked (skipping those another worker
  holds), give each its share of this worker's free senders, rotating fairly over them, never more
  than the endpoint's free in-flight slots (``WEBHOOK_ENDPOINT_CONCURRENCY``, counted over all
  workers; one while its circuit is open), and lease them all in one statement: ``attempts + 1``,
  ``next_attempt_at`` and ``leased_until`` past the attempt's end.
- ``record``: the outcomes of a batch of attempts in one statement, each only if its lease is
  still this worker's, and the breaker's state of the endpoints they went to (``breaker``).

The HTTP requests are made outside any transaction, by sender threads, on kept-alive connections
per endpoint. A worker killed at any moment leaves either an unmoved position or leases that run
out: the delivery is attempted again, with the same ``webhook-id`` (at least once). A hung
endpoint holds at most its in-flight slots, never another endpoint's deliveries.

On PostgreSQL the worker's commits do not wait for their WAL flush (``synchronous_commit`` off
for its transactions only): a database crash can lose the last milliseconds of them, which
at-least-once delivery repeats (a lease or an outcome lost: the attempt is made again; a feed step
lost: made again, its deliveries unique). On SQLite writers take turns (immediate transactions),
which gives the same guarantees.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from threads import feed
from threads.merge import format_datetime

from . import breaker, sender, wake
from .models import Delivery, WebhookEndpoint

logger = logging.getLogger("threads.webhooks")

DEFAULT_CONCURRENCY = 32  # sender threads: attempts in flight at once, over all endpoints
MAX_CONCURRENCY = 1000
FEED_BATCH = 500
LEASE_MARGIN_SECONDS = 5  # beyond the HTTP timeout: time to record the outcome
CLAIM_SECONDS = 0.25  # with nothing new, due retries and test events are looked for this often
ONCE_GRACE_SECONDS = 2.0  # --once ends within the HTTP timeout and this
RECORD_ROWS = 1000  # outcomes a statement (7 parameters each)
ERROR_PAUSE_SECONDS = 1.0
PENDING = Delivery.Status.PENDING


def rules() -> breaker.Rules:
    return breaker.Rules(
        failures=settings.WEBHOOK_BREAKER_FAILURES,
        schedule=list(settings.WEBHOOK_RETRY_SCHEDULE),
        disable_after=timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS),
    )


def _fast_commit() -> None:
    """This transaction's commit does not wait for the WAL flush (see the module's docstring)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO off")


def _db(field_name: str, model, value):
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


# --- enqueue ------------------------------------------------------------------------------------


def enqueue(pks=None) -> tuple[int, bool]:
    """One feed batch for the endpoints ``pks`` (every active one by default): (deliveries
    created, whether more is waiting)."""
    with transaction.atomic():
        _fast_commit()
        endpoints = WebhookEndpoint.objects.select_for_update(skip_locked=True, no_key=True).filter(is_active=True)
        if pks is not None:
            endpoints = endpoints.filter(pk__in=list(pks))
        groups = defaultdict(list)  # one feed read for the endpoints of an organization at one position
        for endpoint in endpoints.order_by("pk"):
            groups[(endpoint.organization_id, feed.Position(endpoint.feed_txid, endpoint.feed_id))].append(endpoint)
        now = timezone.now()
        deliveries, more = [], False
        for (organization_id, position), group in groups.items():
            events, following, has_more = feed.read(organization_id, position, FEED_BATCH)
            more |= has_more
            for endpoint in group:
                deliveries += [
                    Delivery(endpoint=endpoint, event=event, next_attempt_at=now, created_at=now)
                    for event in events
                    if not endpoint.actions or event.action in endpoint.actions
                ]
            if following != position:
                WebhookEndpoint.objects.filter(pk__in=[e.pk for e in group]).update(
                    feed_txid=following.txid, feed_id=following.id
                )
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=2000)
    return len(deliveries), more


# --- claim --------------------------------------------------------------------------------------


def claim(capacity: int, *, due_by=None, exclude=(), served: dict | None = None) -> list[Delivery]:
    """Up to ``capacity`` due deliveries (due at ``due_by``, by default now), leased to this worker,
    each with its ``endpoint`` and ``event`` loaded. ``served`` (endpoint id -> a counter of when
    this worker last gave it a sender) orders the rotation; ``exclude`` skips endpoints."""
    if capacity <= 0:
        return []
    now = timezone.now()
    due_by = min(now, due_by) if due_by else now
    per_endpoint = settings.WEBHOOK_ENDPOINT_CONCURRENCY
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
    served = served if served is not None else {}
    with transaction.atomic():
        _fast_commit()
        in_flight = (
            Delivery.objects.filter(endpoint=OuterRef("pk"), status=PENDING, leased_until__gt=now)
            .order_by()
            .values("endpoint")
            .annotate(n=Count("*"))
            .values("n")
        )
        due = Delivery.objects.filter(endpoint=OuterRef("pk"), status=PENDING, next_attempt_at__lte=due_by)
        endpoints = list(
            WebhookEndpoint.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(Q(next_probe_at__isnull=True) | Q(next_probe_at__lte=now), Exists(due), is_active=True)
            .exclude(pk__in=list(exclude))
            .annotate(in_flight=Coalesce(Subquery(in_flight), 0))
        )
        free = {e.pk: breaker.in_flight_cap(e.next_probe_at, per_endpoint) - e.in_flight for e in endpoints}
        order = sorted((e for e in endpoints if free[e.pk] > 0), key=lambda e: (served.get(e.pk, -1), random.random()))
        shares = _shares(order, free, capacity)
        if not shares:
            return []
        ids = _lease(shares, due_by, lease)
        by_pk = {e.pk: e for e in endpoints}
        claimed = list(Delivery.objects.filter(pk__in=ids).select_related("event").order_by("next_attempt_at", "id"))
    for delivery in claimed:
        delivery.endpoint = by_pk[delivery.endpoint_id]
    return claimed


def _shares(order: list[WebhookEndpoint], free: dict, capacity: int) -> dict:
    """Senders per endpoint, dealt one at a time in turn: each endpoint at most its free slots."""
    shares: dict = {}
    while capacity:
        dealt = False
        for endpoint in order:
            if capacity and shares.get(endpoint.pk, 0) < free[endpoint.pk]:
                shares[endpoint.pk] = shares.get(endpoint.pk, 0) + 1
                capacity -= 1
                dealt = True
        if not dealt:
            break
    return shares


def _lease(shares: dict, due_by, lease) -> list[int]:
    """Lease the oldest due deliveries of each endpoint, as many as its share: one statement."""
    table = Delivery._meta.db_table
    due_at = _db("next_attempt_at", Delivery, due_by)
    picks, params = [], []
    for n, (pk, share) in enumerate(shares.items()):
        picks.append(
            f"SELECT id FROM (SELECT id FROM {table} WHERE endpoint_id = %s AND status = %s"
            f" AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT {int(share)}) AS pick{n}"
        )
        params += [_db("id", WebhookEndpoint, pk), PENDING, due_at]
    until = _db("leased_until", Delivery, lease)
    sql = (
        f"UPDATE {table} SET attempts = attempts + 1, next_attempt_at = %s, leased_until = %s"
        f" WHERE id IN ({' UNION ALL '.join(picks)}) AND status = %s AND next_attempt_at <= %s RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [until, until, *params, PENDING, due_at])
        return [row[0] for row in cursor.fetchall()]


# --- one attempt --------------------------------------------------------------------------------


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


def send(delivery: Delivery, connections: sender.Connections, timeout: float) -> sender.Outcome:
    """Sign and POST the claimed delivery once (no database access)."""
    endpoint = delivery.endpoint
    body = sender.encode(payload(delivery))
    now = timezone.now()
    headers = {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sender.signature(endpoint.secrets(now), delivery.message_id, now, body),
    }
    return connections.post(endpoint.pk, endpoint.url, body, headers, timeout)


# --- record -------------------------------------------------------------------------------------


def record(results: list[tuple[Delivery, sender.Outcome, object]]) -> list[WebhookEndpoint]:
    """Record ``(delivery, outcome, ended_at)`` of a batch of attempts, and the breaker state of
    their endpoints; returns the endpoints this disabled."""
    now = timezone.now()
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    rows = []
    for delivery, outcome, _ in results:
        code, error = outcome.status_code, outcome.error[:500]
        if outcome.ok:
            rows.append((delivery.pk, delivery.attempts, Delivery.Status.SUCCEEDED, code, error, None, now))
        elif delivery.attempts > len(schedule):
            rows.append((delivery.pk, delivery.attempts, Delivery.Status.FAILED, code, error, None, None))
        else:
            retry = now + timedelta(seconds=schedule[delivery.attempts - 1])
            rows.append((delivery.pk, delivery.attempts, PENDING, code, error, retry, None))
    by_endpoint = defaultdict(list)
    for delivery, outcome, ended in results:
        by_endpoint[delivery.endpoint_id].append((ended, outcome.ok, outcome.error))
    with transaction.atomic():
        _fast_commit()
        disabled = _record_breakers(by_endpoint, now)
        for start in range(0, len(rows), RECORD_ROWS):
            _record_rows(rows[start : start + RECORD_ROWS])
    return disabled


def _record_breakers(by_endpoint: dict, now) -> list[WebhookEndpoint]:
    """Endpoints first (the lock order of every step: endpoints, then deliveries)."""
    healthy = [pk for pk, outcomes in by_endpoint.items() if all(ok for _, ok, _ in outcomes)]
    if healthy:  # writes (and locks) only an endpoint that had been failing
        WebhookEndpoint.objects.filter(pk__in=healthy, consecutive_failures__gt=0).update(
            consecutive_failures=0, failing_since=None, next_probe_at=None
        )
    failing = [pk for pk in by_endpoint if pk not in set(healthy)]
    if not failing:
        return []
    disabled, the_rules = [], rules()
    for endpoint in WebhookEndpoint.objects.select_for_update(no_key=True).filter(pk__in=failing).order_by("pk"):
        if not endpoint.is_active:
            continue
        before = breaker.State(endpoint.consecutive_failures, endpoint.failing_since, endpoint.next_probe_at)
        state = breaker.after(before, by_endpoint[endpoint.pk], now, the_rules)
        fields = {
            "consecutive_failures": state.consecutive_failures,
            "failing_since": state.failing_since,
            "next_probe_at": state.next_probe_at,
        }
        if state.disabled_reason:
            fields.update(is_active=False, disabled_reason=state.disabled_reason, disabled_at=now, updated_at=now)
            disabled.append(endpoint)
            logger.warning("webhook endpoint %s (%s) disabled: %s", endpoint.pk, endpoint.url, state.disabled_reason)
        elif state.next_probe_at and not before.next_probe_at:
            logger.warning(
                "webhook endpoint %s (%s): %d failed attempts in a row, circuit open (next probe %s)",
                endpoint.pk,
                endpoint.url,
                state.consecutive_failures,
                format_datetime(state.next_probe_at),
            )
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**fields)
    return disabled


def _record_rows(rows: list[tuple]) -> None:
    table = Delivery._meta.db_table
    types = ("bigint", "integer", "varchar", "integer", "varchar", "timestamptz", "timestamptz")
    pg = connection.vendor == "postgresql"
    one = "(" + ", ".join(f"%s::{t}" if pg else "%s" for t in types) + ")"
    params = []
    for pk, attempts, status, code, error, retry, delivered in rows:
        params += [
            pk,
            attempts,
            status,
            code,
            error,
            _db("next_attempt_at", Delivery, retry),
            _db("delivered_at", Delivery, delivered),
        ]
    sql = (
        f"WITH v (id, attempts, status, code, error, next_at, delivered) AS (VALUES {', '.join([one] * len(rows))})"
        f" UPDATE {table} SET status = v.status, last_status_code = v.code, last_error = v.error,"
        " next_attempt_at = v.next_at, delivered_at = v.delivered, leased_until = NULL"
        f" FROM v WHERE {table}.id = v.id AND {table}.attempts = v.attempts AND {table}.status = %s"
    )
    # Only while the lease is ours: after it ran out another worker may have attempted it again.
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, PENDING])


# --- the loop -----------------------------------------------------------------------------------


def run(stop: threading.Event, *, once: bool = False, concurrency: int = DEFAULT_CONCURRENCY) -> None:
    """Deliver until ``stop`` is set (the attempts in flight finish); with ``once``, attempt each
    delivery due now at most once and return within ``WEBHOOK_TIMEOUT_SECONDS`` plus
    ``ONCE_GRACE_SECONDS``, whatever the receivers do."""
    Worker(stop, once=once, concurrency=concurrency).run()


class Worker:
    """One thread does every database step; ``concurrency`` sender threads make the requests."""

    def __init__(self, stop: threading.Event, *, once: bool, concurrency: int) -> None:
        self.stop, self.once, self.concurrency = stop, once, concurrency
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.connections = sender.Connections(settings.WEBHOOK_ENDPOINT_CONCURRENCY)
        self.watch = wake.Watch()
        self.in_flight = 0
        self.served: dict = {}  # endpoint id -> turn it last got senders (the rotation)
        self.turn = 0
        self.failed_here: set = set()  # --once: endpoints not tried again in this run

    def run(self) -> None:
        timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout + ONCE_GRACE_SECONDS
        due_by = None
        if self.once:
            while (_guarded(enqueue) or (0, False))[1]:
                pass
            due_by = timezone.now()
        senders = [
            threading.Thread(target=self._send_loop, name=f"webhook-sender-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in senders:
            thread.start()
        next_poll = next_claim = 0.0
        stopping = False
        try:
            while True:
                results = self._results(0.05 if stopping else self._wait(next_poll, next_claim))
                if results:
                    self._record(results)
                now = time.monotonic()
                stopping = self.stop.is_set() or (self.once and deadline - now < ONCE_GRACE_SECONDS / 2)
                if stopping:
                    if not self.in_flight:
                        break
                    continue
                created = 0
                if not self.once and now >= next_poll:
                    created = self._poll()
                    next_poll = now + self.watch.interval()
                free = self.concurrency - self.in_flight
                if free and (created or results or now >= next_claim):
                    claimed = _guarded(lambda: self._claim(free, due_by)) or []  # noqa: B023 - called at once
                    next_claim = now + CLAIM_SECONDS
                    for delivery in claimed:
                        self.in_flight += 1
                        self.jobs.put(
                            (delivery, min(timeout, max(0.1, deadline - time.monotonic())) if self.once else timeout)
                        )
                    if self.once and not claimed and not self.in_flight:
                        break
        finally:
            for _ in senders:
                self.jobs.put(None)
            for thread in senders:
                thread.join()
            self.connections.close()
            connection.close()

    def _wait(self, next_poll: float, next_claim: float) -> float:
        if self.once:
            return 0.05 if self.in_flight else 0
        now = time.monotonic()
        until = min(next_poll, next_claim) if self.in_flight < self.concurrency else next_poll
        return max(0.0, until - now)

    def _results(self, wait: float) -> list:
        """Every outcome waiting, after waiting up to ``wait`` seconds for the first one."""
        out = []
        try:
            out.append(self.results.get(timeout=wait) if wait > 0 else self.results.get_nowait())
            while True:
                out.append(self.results.get_nowait())
        except queue.Empty:
            pass
        self.in_flight -= len(out)
        return out

    def _record(self, results: list) -> None:
        if self.once:
            self.failed_here |= {d.endpoint_id for d, outcome, _ in results if not outcome.ok}
        if _guarded(lambda: record(results)) is None:  # the leases run out: attempted again
            time.sleep(ERROR_PAUSE_SECONDS)

    def _poll(self) -> int:
        news = _guarded(self.watch.endpoints_with_news)
        if news is None:
            time.sleep(ERROR_PAUSE_SECONDS)
            return 0
        created = 0
        if news:
            created = (_guarded(lambda: enqueue(news)) or (0, False))[0]
        self.watch.counted(bool(news), created)
        return created

    def _claim(self, free: int, due_by) -> list[Delivery]:
        claimed = claim(free, due_by=due_by, exclude=self.failed_here, served=self.served)
        self.turn += 1
        for delivery in claimed:
            self.served[delivery.endpoint_id] = self.turn
        return claimed

    def _send_loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            delivery, timeout = job
            try:
                outcome = send(delivery, self.connections, timeout)
            except Exception as error:  # a bug must not lose the sender: the attempt counts as failed
                logger.exception("webhook worker: sending %s failed", delivery.message_id)
                outcome = sender.Outcome(None, f"Internal error: {type(error).__name__}")
            self.results.put((delivery, outcome, timezone.now()))


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
