"""Every read, scoped to one organization. Another organization's thread is simply not found."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections, router
from django.db.models import F, Lookup, QuerySet

from .errors import not_found
from .models import Event, Message, Organization, Thread


def thread_qs(org: Organization) -> QuerySet[Thread]:
    return Thread.objects.filter(organization=org)


def thread_get(org: Organization, thread_id: Any, *, lock: bool = False) -> Thread:
    """The thread, or ``thread_not_found`` for a non-UUID id or another organization's thread.

    With ``lock`` (inside a transaction: the services), the row stays locked until it ends
    (SQLite: the write lock is already the transaction's)."""
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        raise not_found() from None
    if connection.vendor == "postgresql":
        # Where the router says: the primary unless a lag-tolerant read chose a replica
        # (threads_project/routers.py); a locking read is part of a write.
        db = connections[router.db_for_write(Thread) if lock else router.db_for_read(Thread)]
        thread = _read(db, org, pk, lock)
    else:
        threads = Thread.objects.select_for_update() if lock else Thread.objects
        thread = threads.filter(organization=org, pk=pk).first()
    if thread is None:
        raise not_found()
    return thread


def _read(db, org: Organization, pk: uuid.UUID, lock: bool) -> Thread | None:
    """PostgreSQL: ``thread_qs(org).filter(pk=pk).first()`` (``FOR UPDATE`` with ``lock``) without
    building the query every time: on a GET or PATCH of one thread, compiling the query through the
    ORM cost more than running it."""
    sql, _ = _read_plan()
    with db.cursor() as cursor:
        cursor.execute(sql + " FOR UPDATE" if lock else sql, [pk, org.pk])
        row = cursor.fetchone()
    return None if row is None else thread_from_row(row, db)


def thread_from_row(row, db=connection) -> Thread:
    """A thread from the values of all its columns in model order, as PostgreSQL returns them."""
    values = list(row)
    for index, convert in _read_plan()[1]:
        values[index] = convert(values[index], None, db)
    return Thread.from_db(db.alias, None, values)


@functools.cache
def _read_plan() -> tuple[str, list]:
    """The SELECT of every column in model order, and the fields' own from-database converters
    (on PostgreSQL only the JSON fields have one; the driver already returns the other types)."""
    quote = connection.ops.quote_name
    fields = Thread._meta.concrete_fields
    sql = (
        f"SELECT {', '.join(quote(field.column) for field in fields)} FROM {quote(Thread._meta.db_table)}"
        f" WHERE {quote('id')} = %s AND {quote('organization_id')} = %s"
    )
    return sql, [(i, field.from_db_value) for i, field in enumerate(fields) if hasattr(field, "from_db_value")]


@contextmanager
def unprepared() -> Iterator[None]:
    """The queries run inside are never server-side prepared statements (psycopg's
    ``prepare=False``), whatever ``prepare_threshold`` says. After a few runs of a prepared
    statement PostgreSQL may keep one generic plan for every parameter value; the list's best plan
    depends on its filter values (a rare metadata value wants the GIN index, a common one the
    newest-first index). On the connection the router reads threads from (a replica's, for a
    lag-tolerant read)."""
    db = connections[router.db_for_read(Thread)]
    if db.vendor != "postgresql":
        yield
        return

    def execute(run, sql, params, many, context):
        if many:
            return run(sql, params, many, context)
        db.validate_no_broken_transaction()
        with db.wrap_database_errors:
            return context["cursor"].cursor.execute(sql, params, prepare=False)

    with db.execute_wrapper(execute):
        yield


def thread_messages(org: Organization, thread_id: Any) -> QuerySet[Message]:
    thread = thread_get(org, thread_id)
    return Message.objects.filter(thread_id=thread.pk)


def thread_events(org: Organization, thread_id: Any) -> QuerySet[Event]:
    """Events of a live thread (a deleted thread's events are only for the admin)."""
    thread = thread_get(org, thread_id)
    return Event.objects.filter(organization=org, thread_id=thread.pk)


class AnyOf(Lookup):
    """``column = ANY(%s)`` with the values as one array parameter on PostgreSQL (``IN`` elsewhere).

    Not ``=``: ``organization_id = $1`` makes the organization a constant of the query, so the
    planner drops it from ``ORDER BY organization_id, id DESC`` and may walk the primary key
    backwards, filtering, instead (the generic plan of a prepared statement does: its estimate of
    one organization's share is a guess). With ``= ANY`` the order stays two columns, and only the
    ``(organization, -id)`` index gives it."""

    lookup_name = "any_of"
    prepare_rhs = False  # a list of values, each prepared by the field in values()

    def values(self, connection) -> list:
        return [self.lhs.output_field.get_db_prep_value(value, connection) for value in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        values = self.values(connection)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*params, *values]

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*params, self.values(connection)]


def in_org_events(events: QuerySet[Event], org_id: uuid.UUID) -> QuerySet[Event]:
    """``events`` of one organization (deleted threads' included), newest first along the
    ``(organization, -id)`` index whatever else filters them (an action, an actor type): the plan
    starts from the organization, not from the newest event of every organization."""
    return events.filter(AnyOf(F("organization_id"), [org_id])).order_by("organization", "-id")


def thread_org_of(thread_id: Any) -> Organization | None:
    """For operator commands, which reach every organization: the owner of a thread id, or None."""
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        return None
    return Organization.objects.filter(threads__pk=pk).first()
