"""The delivery worker's steps: from each active endpoint's place in the change feed to HTTP
attempts and their outcomes. ``threads.webhooks.loop`` runs them (one thread for the database,
sender threads for the requests).

Each step is one short transaction, safe with any number of workers on any machines:

- ``enqueue``: for the endpoints with news (``wake.Watch``), with their rows locked (``SKIP
  LOCKED`` on PostgreSQL: another worker busy with one is not waited for), read the feed beyond
  each one's position (once for all endpoints of an organization at the same position), create one
  ``Delivery`` per wanted event and move the positions on.
- ``claim``: with the endpoints that have due deliveries locked (skipping those another worker
  holds), lease each its share of this worker's budget, rotating fairly over them, in one
  statement: ``attempts + 1``, and ``next_attempt_at`` = ``leased_until`` past the end of the
  attempt (for the n-th delivery of an endpoint, past the end of the attempts queued before it).
  An endpoint whose deliveries another worker holds is left to that worker, so that it never gets
  more than ``WEBHOOK_ENDPOINT_CONCURRENCY`` requests at once; a healthy endpoint is leased a
  batch (``PREFETCH`` times that), a failing one only as many as it may have in flight, one whose
  circuit is open only its probe.
- ``record``: the outcomes of a batch of attempts in one statement, each only if its lease is
  still this worker's, and the breaker's state of the endpoints they went to (``breaker``);
  ``release`` gives back leased deliveries that were not attempted.

The requests are made outside any transaction. A worker killed at any moment leaves either an
unmoved position or leases that run out: the delivery is attempted again, with the same
``webhook-id`` (at least once).

On PostgreSQL the worker's commits do not wait for their WAL flush (``synchronous_commit`` off
for its own connection, or for each of its transactions behind a transaction-mode pooler): a
database crash can lose the last milliseconds of them, which at-least-once delivery repeats (a
lease or an outcome lost: the attempt is made again; a feed step lost: made again, its deliveries
unique). On SQLite writers take turns (immediate transactions), which gives the same guarantees.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from threads import feed
from threads.errors import is_pooler_misconfiguration
from threads.merge import format_datetime

from . import breaker, sender
from .models import Delivery, WebhookEndpoint

logger = logging.getLogger("threads.webhooks")

FEED_BATCH = 500
LEASE_MARGIN_SECONDS = 5  # beyond the HTTP timeout: time to record the outcome
# A healthy endpoint is leased this many times the deliveries it may have in flight, sent in turn
# on its connections: one claim for 64 deliveries instead of one for each (measured to one local
# endpoint: 124 deliveries/s with a claim per delivery, 288-387/s with 16 a claim, 598-658/s with 64).
# "Healthy" is earned: an endpoint gets a batch only once an attempt of this worker to it has
# succeeded, so that endpoints that hang (not failed yet: their attempts are still waiting for the
# timeout) hold only their in-flight share of the worker's budget and cannot starve the others.
PREFETCH = 32
RECORD_ROWS = 1000  # outcomes a statement (7 parameters each)
PENDING = Delivery.Status.PENDING
_async_commit = threading.local()


def rules() -> breaker.Rules:
    return breaker.Rules(
        failures=settings.WEBHOOK_BREAKER_FAILURES,
        schedule=list(settings.WEBHOOK_RETRY_SCHEDULE),
        disable_after=timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS),
    )


def _fast_commit() -> None:
    """The commits of the worker's transactions do not wait for the WAL flush (see the module's
    docstring): set once for the worker's connection, or in each transaction behind a
    transaction-mode pooler (where a session setting would reach other clients). Called at the
    start of every transaction of the worker."""
    if connection.vendor != "postgresql":
        return
    pooled = settings.DATABASE_POOLER == "transaction"
    if not pooled and getattr(_async_commit, "raw", None) is connection.connection:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET {'LOCAL ' if pooled else ''}synchronous_commit TO off")
    if not pooled and not connection.in_atomic_block:
        _async_commit.raw = connection.connection


def _prepare() -> None:
    """Before a transaction: the session setting, outside it (so that no rollback undoes it)."""
    if connection.vendor == "postgresql" and settings.DATABASE_POOLER != "transaction":
        connection.ensure_connection()
        _fast_commit()


def _db(field_name: str, model, value):
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


# --- enqueue ------------------------------------------------------------------------------------


def enqueue(pks=None) -> tuple[int, bool]:
    """One feed batch for the endpoints ``pks`` (every active one by default): (deliveries
    created, whether more is waiting)."""
    _prepare()
    with transaction.atomic(savepoint=False):  # inside a step of the loop: one transaction
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


def limit(endpoint: WebhookEndpoint, proven: bool = True) -> int:
    """Deliveries an endpoint may have leased: one (the probe) while its circuit is open, as many as
    it may have in flight while it fails or has not yet answered this worker (``proven``), a batch
    while it is healthy."""
    in_flight = breaker.in_flight_cap(endpoint.next_probe_at, settings.WEBHOOK_ENDPOINT_CONCURRENCY)
    return in_flight * PREFETCH if proven and not endpoint.consecutive_failures else in_flight


class Claimed(list):
    """What a claim leased (a list of deliveries), and ``full``: the endpoints given their whole
    share, as much as the budget or their limit allowed; they probably have more due."""

    def __init__(self, deliveries=(), full=()) -> None:
        super().__init__(deliveries)
        self.full = set(full)


def claim(
    budget: int,
    *,
    due_by=None,
    exclude=(),
    served: dict | None = None,
    held: dict | None = None,
    proven: set | None = None,
) -> Claimed:
    """Up to ``budget`` due deliveries (due at ``due_by``, by default now), leased to this worker,
    each with its ``endpoint`` and ``event`` loaded, oldest first for each endpoint. ``served``
    (endpoint id -> when this worker last claimed for it) orders the rotation, least recently
    served first; ``held`` (endpoint id -> deliveries this worker holds) tells its own leases
    from other workers'; ``exclude`` skips endpoints; ``proven`` (endpoint ids whose last attempt by
    this worker succeeded; None: every endpoint) says which may be leased a batch."""
    if budget <= 0:
        return Claimed()
    now = timezone.now()
    due_by = min(now, due_by) if due_by else now
    served, held = served if served is not None else {}, held if held is not None else {}
    _prepare()
    with transaction.atomic(savepoint=False):  # inside a step of the loop: one transaction
        _fast_commit()
        leased = (
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
            .annotate(leased=Coalesce(Subquery(leased), 0))
        )
        # An endpoint that another worker holds deliveries of is that worker's until they end.
        caps = {e.pk: limit(e, proven is None or e.pk in proven) for e in endpoints}
        free = {e.pk: caps[e.pk] - e.leased if e.leased <= held.get(e.pk, 0) else 0 for e in endpoints}
        order = sorted((e for e in endpoints if free[e.pk] > 0), key=lambda e: (served.get(e.pk, -1), random.random()))
        shares = _shares(order, free, budget)
        if not shares:
            return Claimed()
        ids = _lease(shares, due_by, now, {e.pk: held.get(e.pk, 0) for e in order})
        by_pk = {e.pk: e for e in endpoints}
        claimed = list(
            Delivery.objects.filter(pk__in=ids).select_related("event").order_by("endpoint", "next_attempt_at", "id")
        )
    got: dict = defaultdict(int)
    for delivery in claimed:
        delivery.endpoint = by_pk[delivery.endpoint_id]
        got[delivery.endpoint_id] += 1
    return Claimed(claimed, full=[pk for pk, share in shares.items() if got[pk] >= share])


def _shares(order: list[WebhookEndpoint], free: dict, budget: int) -> dict:
    """Deliveries per endpoint, dealt one at a time in turn: each endpoint at most its free slots."""
    shares: dict = {}
    while budget:
        dealt = False
        for endpoint in order:
            if budget and shares.get(endpoint.pk, 0) < free[endpoint.pk]:
                shares[endpoint.pk] = shares.get(endpoint.pk, 0) + 1
                budget -= 1
                dealt = True
        if not dealt:
            break
    return shares


def _lease(shares: dict, due_by, now, held: dict) -> list[int]:
    """Lease the oldest due deliveries of each endpoint, as many as its share, in one statement.
    The n-th delivery of an endpoint (counting those this worker holds already) waits for the
    attempts before it, ``WEBHOOK_ENDPOINT_CONCURRENCY`` at a time: its lease covers them."""
    table = Delivery._meta.db_table
    pg = connection.vendor == "postgresql"
    due_at = _db("next_attempt_at", Delivery, due_by)
    picks, params = [], []
    for n, (pk, share) in enumerate(shares.items()):
        picks.append(
            f"SELECT id, {int(held.get(pk, 0))} AS held FROM (SELECT id FROM {table} WHERE endpoint_id = %s"
            f" AND status = %s AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT {int(share)}) AS pick{n}"
        )
        params += [_db("id", WebhookEndpoint, pk), PENDING, due_at]
    per_endpoint, timeout = settings.WEBHOOK_ENDPOINT_CONCURRENCY, settings.WEBHOOK_TIMEOUT_SECONDS
    rounds = (max(shares.values()) + max(held.values(), default=0)) // per_endpoint + 1
    leases = [now + timedelta(seconds=(r + 1) * timeout + LEASE_MARGIN_SECONDS) for r in range(rounds)]
    cast = ("::integer", "::timestamptz") if pg else ("", "")
    values = ", ".join(f"(%s{cast[0]}, %s{cast[1]})" for _ in leases)
    sql = (
        f"WITH leases (round, until) AS (VALUES {values}),"
        f" picked (id, round) AS (SELECT id, (held + row_number() OVER (PARTITION BY d.endpoint_id"
        f" ORDER BY d.next_attempt_at, d.id) - 1) / {int(per_endpoint)} FROM {table} AS d"
        f" JOIN ({' UNION ALL '.join(picks)}) AS p USING (id))"
        f" UPDATE {table} SET attempts = attempts + 1, next_attempt_at = leases.until, leased_until = leases.until"
        f" FROM picked JOIN leases ON leases.round = picked.round"
        f" WHERE {table}.id = picked.id AND {table}.status = %s AND {table}.next_attempt_at <= %s"
        f" RETURNING {table}.id"
    )
    lease_params = [x for r, until in enumerate(leases) for x in (r, _db("leased_until", Delivery, until))]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*lease_params, *params, PENDING, due_at])
        return [row[0] for row in cursor.fetchall()]


def release(deliveries: list[Delivery]) -> None:
    """Give back leased deliveries that were not attempted: due now again, their attempt not
    counted (only while the lease is still this worker's)."""
    if not deliveries:
        return
    now = timezone.now()
    _prepare()
    with transaction.atomic(savepoint=False):  # inside a step of the loop: one transaction
        _fast_commit()
        for attempts in {d.attempts for d in deliveries}:
            Delivery.objects.filter(
                pk__in=[d.pk for d in deliveries if d.attempts == attempts], attempts=attempts, status=PENDING
            ).update(attempts=attempts - 1, next_attempt_at=now, leased_until=None)


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
    _prepare()
    with transaction.atomic(savepoint=False):  # inside a step of the loop: one transaction
        _fast_commit()
        disabled = _record_breakers(by_endpoint, now, {d.endpoint_id: d.endpoint for d, _, _ in results})
        for start in range(0, len(rows), RECORD_ROWS):
            _record_rows(rows[start : start + RECORD_ROWS])
    return disabled


def _record_breakers(by_endpoint: dict, now, seen: dict) -> list[WebhookEndpoint]:
    """Endpoints first (the lock order of every step: endpoints, then deliveries). ``seen``: the
    endpoints as claimed; one that was healthy then and only succeeded is not written."""
    healthy = [pk for pk, outcomes in by_endpoint.items() if all(ok for _, ok, _ in outcomes)]
    recovering = [pk for pk in healthy if seen[pk].consecutive_failures or seen[pk].next_probe_at]
    if recovering:  # writes (and locks) only an endpoint that had been failing
        WebhookEndpoint.objects.filter(pk__in=recovering).update(
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


def guarded(step, *args):
    """Run one step. An error (e.g. the database restarting) is logged and the step tried again
    on the next round: the worker keeps running, and a lease it held runs out."""
    try:
        return step(*args)
    except Exception as error:
        name = getattr(step, "__name__", "a step")
        if isinstance(error, DatabaseError) and is_pooler_misconfiguration(error):
            logger.error("webhook worker: %s failed on a prepared statement: set DATABASE_POOLER=transaction", name)
        else:
            logger.exception("webhook worker: %s failed", name)
        if isinstance(error, DatabaseError):
            connection.close()
        return None
