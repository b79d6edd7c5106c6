"""What wakes the delivery worker when an event commits: a poll of the change feed's own index.

Every ``WEBHOOK_POLL_SECONDS`` (5 ms) the worker asks one question: which active endpoints have
a committed event beyond their feed position? It is one probe of the feed's index
``(organization, txid, id)`` per active endpoint, and it needs nothing on the write path: no
trigger, no notification. LISTEN/NOTIFY was measured and rejected: a transaction that notifies
takes PostgreSQL's global notification lock at commit, which serialized the PATCH commits and cut
the database's PATCH rate from 4,438 to 2,425 transactions a second (pgbench, 16 clients;
bench/webhooks.py measures it again). The poll works the same on SQLite and behind a transaction-mode pooler
(``DATABASE_POOLER = "transaction"``), where LISTEN could not.

An event that has committed but is still above the feed's horizon (an older transaction is still
running) keeps the answer "yes" until the horizon passes it; the worker then polls less often
(``Watch.backoff``) rather than reading the feed 200 times a second for nothing.

While nothing is new the probe of every endpoint is skipped: the worker first reads the feed's head
(``feed.head``, the last position whose events have all committed), which moves whenever an event
can become deliverable, and probes the endpoints only when it has moved. An idle worker with 1,000
endpoints then asks one question 200 times a second, not 1,000.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from threads import feed
from threads.models import Event

from .models import WebhookEndpoint

BACKOFF_AFTER = 20  # fruitless rounds in a row (about 100 ms) before polling less often
BACKOFF_SECONDS = 0.05


class Watch:
    def __init__(self) -> None:
        self.fruitless = 0
        self.quiet = False  # the last round found nothing new
        self.head = None  # the feed's head when the endpoints were last probed
        endpoints, events = WebhookEndpoint._meta.db_table, Event._meta.db_table
        self.sql = (
            f"SELECT ep.id FROM {endpoints} AS ep WHERE ep.is_active AND EXISTS ("
            f"SELECT 1 FROM {events} AS e WHERE e.organization_id = ep.organization_id"
            " AND (e.txid, e.id) > (ep.feed_txid, ep.feed_id))"
        )

    def endpoints_with_news(self) -> list:
        """The active endpoints with a committed event beyond their feed position."""
        head = feed.head()  # read before the probe: what commits after it moves the head again
        if self.quiet and head == self.head:
            return []
        self.head = head
        with connection.cursor() as cursor:
            cursor.execute(self.sql)
            rows = cursor.fetchall()
        field = WebhookEndpoint._meta.pk
        return [field.to_python(pk) for (pk,) in rows]

    def interval(self) -> float:
        return BACKOFF_SECONDS if self.fruitless >= BACKOFF_AFTER else settings.WEBHOOK_POLL_SECONDS

    def counted(self, news: bool, created: int) -> None:
        """After a round: news that brought no delivery (the horizon has not passed it yet)."""
        self.fruitless = self.fruitless + 1 if news and not created else 0
        self.quiet = not news
