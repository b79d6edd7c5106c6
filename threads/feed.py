"""The organization's change feed: its history events in commit order, each exactly once.

An event's place in the feed is its ``Position``, ``(txid, id)``. Ids come from a sequence and are
handed out in one order but committed in another, so "every id above the last one seen" would
skip an event whose transaction commits late. On PostgreSQL a trigger stamps each event with its
transaction's id (``pg_current_xact_id()``, or the thread's previous event's ``txid`` when that
is higher, so that a thread's events stay in version order), and the feed shows only events below
the *horizon*: the oldest transaction of this database still running when the read starts. Every
event below it is committed, and every event that commits later is stamped at or above it, so a
reader that resumes after the last position it was given misses nothing and sees nothing twice.
On SQLite writers take turns (immediate transactions) and commit in id order: ``txid`` stays 0 and
the horizon is the highest id.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Q

from .errors import invalid
from .merge import format_datetime
from .models import Event

MAX_ID = 2**63 - 1

# The oldest transaction still running, of this database only: a transaction open in another
# database of the cluster cannot write these events and must not hold the feed back. A running
# transaction whose database is not known is counted (the horizon can only be too low, never too
# high). With none running, everything below the snapshot's xmax has ended. A reader inside a
# transaction that has written waits for that transaction too: the feed shows committed events.
HORIZON_SQL = """
SELECT coalesce(
    (SELECT min(x) FROM pg_snapshot_xip(s.snap) AS x
      WHERE x::xid NOT IN (SELECT backend_xid FROM pg_stat_activity
                            WHERE backend_xid IS NOT NULL AND datname <> current_database())),
    pg_snapshot_xmax(s.snap))::text::bigint
FROM (SELECT pg_current_snapshot() AS snap) AS s
"""


class Position(NamedTuple):
    txid: int
    id: int


START = Position(0, 0)


def encode(position: Position) -> str:
    return base64.urlsafe_b64encode(f"{position.txid}.{position.id}".encode()).decode().rstrip("=")


def decode(cursor: str, param: str = "after") -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
        txid, id_ = (int(part) for part in raw.split("."))
    except (ValueError, UnicodeError, binascii.Error):
        raise invalid("The cursor is not valid: send back a 'nextCursor' unchanged.", param) from None
    if not (0 <= txid <= MAX_ID and 0 <= id_ <= MAX_ID):
        raise invalid("The cursor is not valid: send back a 'nextCursor' unchanged.", param)
    return Position(txid, id_)


def head() -> Position:
    """The last position whose events have all committed: what commits from now on lies beyond it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(HORIZON_SQL)
            return Position(cursor.fetchone()[0] - 1, MAX_ID)
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {Event._meta.db_table}")
        return Position(0, cursor.fetchone()[0])


def read(
    organization_id: Any,
    after: Position | None,
    limit: int,
    *,
    thread_id: Any = None,
    actions: list[str] | None = None,
) -> tuple[list[Event], Position, bool]:
    """Up to ``limit`` events of the organization beyond ``after``, oldest first.

    Returns ``(events, next, has_more)``: ``next`` is where the following read starts. When the
    page holds all there is, ``next`` moves up to the horizon, so a filtered reader does not walk
    the same unmatched events again on every poll.
    """
    after = after or START
    bound = head()  # read first: every event up to it has committed and is visible from now on
    events = Event.objects.filter(organization_id=organization_id)
    if thread_id is not None:
        events = events.filter(thread_id=thread_id)
    if actions:
        events = events.filter(action__in=actions)
    events = list(events.filter(_after(after), _up_to(bound)).order_by("txid", "id")[: limit + 1])
    has_more = len(events) > limit
    events = events[:limit]
    if has_more:
        return events, position_of(events[-1]), True
    return events, max(after, bound), False


def position_of(event: Event) -> Position:
    return Position(event.txid, event.id)


def _after(position: Position) -> Q:
    return Q(txid__gt=position.txid) | Q(txid=position.txid, id__gt=position.id)


def _up_to(position: Position) -> Q:
    return Q(txid__lt=position.txid) | Q(txid=position.txid, id__lte=position.id)


def event_json(event: Event) -> dict:
    """The feed's (and the webhooks') shape of an event: the history's, with its thread's id."""
    return {
        "id": event.id,
        "threadId": str(event.thread_id),
        "createdAt": format_datetime(event.created_at),
        "action": event.action,
        "version": event.version,
        "actor": {"type": event.actor_type, "id": event.actor_id, "name": event.actor_name},
        "changes": event.changes,
    }
