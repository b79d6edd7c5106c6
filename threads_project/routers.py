"""Read replicas (docs/deploy.md, "Read replicas"): which reads may go to a streaming standby.

Nothing here acts unless ``DATABASE_REPLICA_URLS`` names replicas (``settings.DATABASE_REPLICAS``
lists their aliases, ``replica_0``, ``replica_1``…). Then:

- **Opt-in per read.** Only code run under ``replica_reads`` (the decorator of the lag-tolerant
  reads: the thread list and its search, history pages, the operator list, the admin changelists,
  ``export_threads``) reads a replica. Everything else reads the primary: every write, every read
  inside a transaction or after a write of the same request, ``If-Match`` checks (they run under
  the row lock, in the write's transaction), single-thread reads, the change feed and the webhook
  worker (a standby's snapshot does not show the primary's running transactions, so the feed's
  horizon would skip an event still open there).
- **Read-your-writes.** After a caller's request with an unsafe method (any door: the WSGI handler
  notes it, threads_project/wsgi.py), that caller's reads go to the primary for
  ``DATABASE_READ_YOUR_WRITES_SECONDS``; the note is kept per credential (API key, user, chat token)
  in the cache, shared by every worker and node with ``REDIS_URL``.
- **Lag bound and health.** A replica is used only while its lag is within
  ``DATABASE_REPLICA_MAX_LAG_SECONDS``; each process checks each replica at most once a second
  (``CHECK_EVERY``) and keeps the verdict. A replica that is down is skipped; one that fails during
  a read is marked down and the read runs again on the primary, so the client sees no error.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

log = logging.getLogger("threads.replicas")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A verdict on a replica (lag within the bound, or not, or down) is trusted this long by a process.
CHECK_EVERY = 1.0
STICKY_KEY = "replicas:wrote:{}"

# The lag of a standby: zero when it has replayed everything the primary had flushed when asked
# (an idle primary writes nothing, so the age of the last replayed commit grows without any lag);
# otherwise the age of the last commit it replayed (NULL, never replayed one: unknown, too old).
LAG_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_replay_lsn() >= %s::pg_lsn THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
"""
# Without the primary's position (it is away): caught up when it has replayed all it received and
# is still streaming from the primary.
LAG_SQL_ALONE = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
                 AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
"""


@dataclass
class Reading:
    """What a ``replica_reads`` call reads: a replica, or the primary (None); after a write of the
    same call, the primary."""

    alias: str | None
    wrote: bool = False


_reading: ContextVar[Reading | None] = ContextVar("replica_reading", default=None)


class ReplicaRouter:
    """``DATABASE_ROUTERS`` when replicas are configured: reads go where ``replica_reads`` chose,
    everything else to the primary."""

    def db_for_read(self, model, **hints) -> str:
        reading = _reading.get()
        if reading is None or reading.alias is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return reading.alias

    def db_for_write(self, model, **hints) -> str:
        reading = _reading.get()
        if reading is not None:  # what this call reads from now on may be what it just wrote
            reading.alias, reading.wrote = None, True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # one database, seen from several servers

    def allow_migrate(self, db, app_label, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS  # a standby replays the primary's schema


# --- which replica, if any --------------------------------------------------------------------


class Verdicts:
    """Per process: each replica's last verdict, and when it was reached."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.usable: dict[str, bool] = {}
        self.checked: dict[str, float] = {}

    def usable_now(self, alias: str) -> bool:
        now = time.monotonic()
        with self.lock:
            due = now - self.checked.get(alias, -CHECK_EVERY) >= CHECK_EVERY
            if due:  # this thread checks; the others keep the last verdict meanwhile
                self.checked[alias] = now
        if due:
            self.set(alias, *check(alias))
        return self.usable.get(alias, False)

    def set(self, alias: str, usable: bool, reason: str = "", *, now: bool = False) -> None:
        """Record a verdict (``now``: reached outside the checks, trusted for ``CHECK_EVERY`` from
        now); a change is logged, with its reason."""
        before = self.usable.get(alias)
        self.usable[alias] = usable
        if now:
            self.checked[alias] = time.monotonic()
        if before != usable and (before is not None or not usable):
            log.warning("replica %s %s%s", alias, "is in use again" if usable else "is skipped: ", reason)


verdicts = Verdicts()


def check(alias: str) -> tuple[bool, str]:
    """Whether the replica answers and lags no more than ``DATABASE_REPLICA_MAX_LAG_SECONDS``, and
    why not."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_flush_lsn()::text")
            primary_lsn = cursor.fetchone()[0]
    except DatabaseError:
        primary_lsn = None
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(LAG_SQL if primary_lsn else LAG_SQL_ALONE, [primary_lsn] if primary_lsn else [])
            in_recovery, lag = cursor.fetchone()
    except DatabaseError as error:
        _discard(alias)
        return False, "it does not answer (" + (str(error).strip().splitlines() or [type(error).__name__])[0] + ")"
    if not in_recovery:
        return False, "it is not a standby (promoted, or a primary of its own)"
    bound = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
    if lag is None or lag > bound:
        return False, f"it lags {'?' if lag is None else f'{lag:.1f}'} s, more than {bound:g} s"
    return True, ""


def _discard(alias: str) -> None:
    """Close a replica connection that failed, so that the next use connects afresh."""
    try:
        connections[alias].close()
    except DatabaseError:
        connections[alias].connection = None


def healthy_replica() -> str | None:
    """A replica that is up and within the lag bound, chosen at random among them; or None."""
    aliases = settings.DATABASE_REPLICAS
    if len(aliases) > 1:
        aliases = random.sample(aliases, len(aliases))
    return next((alias for alias in aliases if verdicts.usable_now(alias)), None)


# --- read-your-writes ------------------------------------------------------------------------


def caller_of(user) -> str | None:
    """The credential behind a request, for read-your-writes: an API key, a user (by token or by
    session: the same person either way) or a chat token; None for no one."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    kind = getattr(user, "kind", None)  # threads.api.authentication.Principal
    if kind is not None:
        return user.pk
    return f"user:{user.pk}"


def note_write(caller: str | None) -> None:
    """``caller`` has just sent an unsafe request: its reads go to the primary for the window."""
    if caller is None:
        return
    try:
        cache.set(STICKY_KEY.format(caller), 1, settings.DATABASE_READ_YOUR_WRITES_SECONDS)
    except Exception:  # noqa: BLE001 - the cache is away: the write is done, say so and go on
        log.exception("read-your-writes: could not note a write of %s in the cache", caller)


def wrote_recently(caller: str | None) -> bool:
    if caller is None:
        return False
    try:
        return cache.get(STICKY_KEY.format(caller)) is not None
    except Exception:  # noqa: BLE001 - without the cache, no way to know: the primary is safe
        log.exception("read-your-writes: the cache did not answer; reading the primary")
        return True


def after_request(request) -> None:
    """Called by the WSGI handler for every request once its answer is made: an unsafe request
    (but a read declared ``reads_only``, e.g. LangGraph's ``POST /threads/search``, that wrote
    nothing) starts its caller's read-your-writes window."""
    if not settings.DATABASE_REPLICAS or request.method in SAFE_METHODS:
        return
    if getattr(request, "replica_read_only", False):
        return
    note_write(caller_of(getattr(request, "user", None)))


# --- the decorator ---------------------------------------------------------------------------


def _request_of(args) -> object | None:
    return next((arg for arg in args if hasattr(arg, "META")), None)


def _choose(request, view) -> str | None:
    if request is not None:
        if request.method not in SAFE_METHODS and not getattr(view, "reads_only", False):
            return None
        if wrote_recently(caller_of(getattr(request, "user", None))):
            return None
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return None
    return healthy_replica()


def replica_reads(func):
    """Decorator of a lag-tolerant read (a view, a view method, an admin ``changelist_view`` or any
    function): its ORM reads go to a healthy replica — not for an unsafe request (unless the view
    says ``reads_only``), not for a caller within its read-your-writes window, not inside a
    transaction, and after a write of its own only to the primary. A template response is rendered
    inside, so that the reads it makes are made here. If the replica fails, the function runs again
    on the primary: reads only, so running twice is safe."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        if not settings.DATABASE_REPLICAS or _reading.get() is not None:
            return func(*args, **kwargs)  # nothing to choose, or chosen by an outer call
        request, view = _request_of(args), args[0] if args else None
        reading = Reading(_choose(request, view))
        alias = reading.alias
        token = _reading.set(reading)
        try:
            result = func(*args, **kwargs)
            # A template response (the admin's) reads as it renders: render it here. DRF's
            # responses carry data already read, and are rendered by DRF later.
            if getattr(result, "template_name", None) is not None and not getattr(result, "is_rendered", True):
                result.render()
            if request is not None and getattr(view, "reads_only", False) and not reading.wrote:
                getattr(request, "_request", request).replica_read_only = True  # a POST that only read
            return result
        except DatabaseError:
            if alias is None or not connections[alias].errors_occurred:
                raise  # the primary's error: no second try
        finally:
            _reading.reset(token)
        _discard(alias)
        verdicts.set(alias, False, "it failed during a read (the read ran again on the primary)", now=True)
        return func(*args, **kwargs)

    return run


if settings.DATABASE_REPLICAS and not settings.REDIS_URL:
    log.warning(
        "DATABASE_REPLICA_URLS without REDIS_URL: read-your-writes holds within one worker process "
        "only (a caller's next request may reach another worker and read a replica behind its write)"
    )
