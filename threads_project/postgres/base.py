"""Django's PostgreSQL backend with a health check that costs no round trip, and bulk writes
batched by parameter count.

Django's own ``is_usable()`` sends ``SELECT 1`` before each request's first query when
``CONN_HEALTH_CHECKS`` is on: about 7% of a PATCH's time in profiles. An idle connection that the
server has closed (a restart, ``pg_terminate_backend``, a crash) shows it on its socket instead:
the server's termination notice or the end of the stream makes it readable, while a healthy idle
connection has nothing to read (this service uses no LISTEN/NOTIFY). So a poll of the socket with
no wait tells the two apart.

With server-side binding (settings: ``server_side_binding``) the parameters travel in the
protocol's Bind message, which counts them in 16 bits: a statement takes at most 65,535. Django
knows that limit for Oracle and SQLite, not for PostgreSQL, so ``bulk_create`` sent 5,000 rows of
20 columns in one INSERT and failed ("number of parameters must be between 0 and 65535"). Here
every ``bulk_create`` (and ``bulk_update``, and the batched deletes of a cascade) is cut into
statements of at most that many parameters.

Behind a transaction-mode pooler (``DATABASE_POOLER = "transaction"``) a connection's consecutive
transactions run on different server connections, so nothing may be left on the session. Django
sets the session's time zone when the server's differs from ``TIME_ZONE``
(``set_config('TimeZone', …, false)``) because its reader of ``timestamptz`` values takes the
session's zone for ``TIME_ZONE``'s: it relabels the time rather than converting it (a server in
New York would make every time 5 hours early). Here the session is left alone and the reader
converts: a value arrives with its offset, so it is the same instant in any session zone. Every
time is sent with its offset too, and the SQL that formats or truncates times names its zone
(``AT TIME ZONE``).

psycopg names a connection's prepared statements ``_pg3_0``, ``_pg3_1``, … — the same names on
every connection. Behind a pooler that was not told (``DATABASE_POOLER`` unset, prepares on), one
client's ``_pg3_3`` can then exist on the server connection another client lands on, and run that
other client's SQL with this one's parameters: another query's rows, without an error. Each
connection's names start at a random number instead, so a statement name on a server connection
is always its own client's: a missing one fails (SQLSTATE 26000), which the doors answer with a
503 naming the setting (``threads.errors.is_pooler_misconfiguration``).
"""

from __future__ import annotations

import secrets
import select

from django.conf import settings
from django.db.backends.postgresql import base, features, operations
from psycopg.types.datetime import TimestamptzLoader


class DatabaseFeatures(features.DatabaseFeatures):
    max_query_params = 2**16 - 1


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields, objs) -> int:
        """Rows a statement may carry: one parameter per field and row at most."""
        fields = list(fields)
        if not fields:
            return len(objs)
        return max(1, self.connection.features.max_query_params // len(fields))


class ConvertingTzLoader(TimestamptzLoader):
    """``timestamptz`` as an aware time in ``timezone`` (``TIME_ZONE``), whatever the session's
    zone: psycopg's reading (the instant, in the session's zone) converted, not relabelled."""

    timezone = None

    def load(self, data):
        return super().load(data).astimezone(self.timezone)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations

    def get_connection_params(self):
        params = super().get_connection_params()
        if settings.DATABASE_POOLER == "transaction":
            # Django's create_cursor() keeps a loader whose ``timezone`` is its own.
            loader = type("ConvertingTzLoader", (ConvertingTzLoader,), {"timezone": self.timezone})
            params["context"].register_loader("timestamptz", loader)
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        manager = getattr(connection, "_prepared", None)  # psycopg's PrepareManager
        if isinstance(getattr(manager, "_prepared_idx", None), int):
            manager._prepared_idx = secrets.randbits(62)
        return connection

    def _configure_timezone(self, connection) -> bool:
        if settings.DATABASE_POOLER == "transaction":
            return False  # no session state: ConvertingTzLoader reads times in any session zone
        return super()._configure_timezone(connection)

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
