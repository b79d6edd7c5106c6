"""Every write to a thread. Each service is one transaction that also records one history event.

The doors (REST API, seed surfaces, admin, operator pages, commands) call these and nothing else
assigns a thread's fields.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import merge, selectors
from .errors import ThreadError
from .models import Event, Message, Organization, Thread


@dataclass(frozen=True)
class Actor:
    """Who made a change, as the history shows it."""

    type: str
    id: str = ""
    name: str = ""

    @classmethod
    def user(cls, user) -> Actor:
        return cls(Event.ActorType.USER, str(user.pk), user.get_username())

    @classmethod
    def api_key(cls, key) -> Actor:
        return cls(Event.ActorType.API_KEY, str(key.pk), key.name)

    @classmethod
    def chat_token(cls, thread_id) -> Actor:
        return cls(Event.ActorType.CHAT_TOKEN, str(thread_id), "chat token")

    @classmethod
    def command(cls, name: str) -> Actor:
        return cls(Event.ActorType.COMMAND, name, name)


def state_of(thread: Thread) -> merge.State:
    return {attr: getattr(thread, attr) for attr in merge.WRITABLE.values()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _lock(org: Organization, thread_id: Any) -> Thread:
    """The thread, row-locked until the transaction ends, or ``thread_not_found``."""
    return selectors.thread_get(org, thread_id, lock=True)


def _check_version(thread: Thread, if_match: int | None) -> None:
    if if_match is not None and thread.version != if_match:
        raise ThreadError(
            "version_mismatch",
            f"The thread is at version {thread.version}, not {if_match}.",
            "If-Match",
        )


def _record(thread: Thread, action: str, actor: Actor, changes: dict, version: int) -> Event:
    return Event.objects.create(
        organization_id=thread.organization_id,
        thread_id=thread.pk,
        action=action,
        version=version,
        actor_type=actor.type,
        actor_id=actor.id[:128],
        actor_name=actor.name[:200],
        changes=changes,
        created_at=timezone.now(),
    )


def thread_create(
    *, org: Organization, data: Any, actor: Actor, messages: Iterable[Any] = ()
) -> Thread:
    """Create a thread from a canonical body (``id`` allowed), optionally with first messages.

    Raises ``thread_exists`` (409) when a client-supplied id is already used.
    """
    patch = merge.parse_patch(data, allow_id=True)
    state = merge.apply_patch(merge.DEFAULT_STATE, patch)
    merge.validate_state(state)
    parsed_messages = [merge.parse_message(m) for m in messages]
    now = timezone.now()
    thread = Thread(
        id=patch.get("id") or uuid.uuid4(), organization=org, created_at=now, updated_at=now,
        version=1, **state,
    )
    try:
        with transaction.atomic():
            thread.save(force_insert=True)
            _record(thread, Event.Action.CREATED, actor, merge.diff(merge.DEFAULT_STATE, state), 1)
            for parsed in parsed_messages:
                _append(thread, parsed, actor)
    except IntegrityError:
        if Thread.objects.filter(pk=thread.pk).exists():
            raise ThreadError("thread_exists", "A thread with this id already exists.", "id") from None
        raise
    return thread


def thread_update(
    *,
    org: Organization,
    thread_id: Any,
    patch: Any,
    actor: Actor,
    if_match: int | None = None,
    fields: frozenset[str] | None = None,
) -> Thread:
    """The merge PATCH (API.md §2). Validates completely before writing; a no-op writes nothing.

    ``fields`` narrows what may be written (a chat token: metadata and variables).
    Returns the thread as stored after the call.
    """
    return _update(org, thread_id, merge.parse_patch(patch, fields=fields), actor, if_match)[0]


def _update(
    org: Organization, thread_id: Any, parsed: merge.Patch, actor: Actor, if_match: int | None
) -> tuple[Thread, bool]:
    if connection.vendor == "postgresql" and not _contended(thread_id):
        done = _update_unlocked(org, thread_id, parsed, actor, if_match)
        if done is not None:
            return done
        _contended(thread_id, mark=True)
    with transaction.atomic():
        thread = _lock(org, thread_id)
        values, changes = _plan(thread, parsed, if_match)
        if not changes:
            return thread, False
        _write(thread, values, actor, changes)  # the row is ours: this always writes
    return thread, True


def _plan(thread: Thread, parsed: merge.Patch, if_match: int | None) -> tuple[merge.State, dict]:
    """The merge rules applied to the stored thread: the fields that change and the history diff.
    Raises ``version_mismatch`` or a validation error before anything is written."""
    _check_version(thread, if_match)
    old = state_of(thread)
    new = merge.apply_patch(old, parsed)
    merge.validate_state(new)
    return {attr: new[attr] for attr in new if new[attr] != old[attr]}, merge.diff(old, new)


def _apply(thread: Thread, values: merge.State, now: datetime) -> None:
    for attr, value in values.items():
        setattr(thread, attr, value)
    thread.version += 1
    thread.updated_at = now


def _update_unlocked(
    org: Organization, thread_id: Any, parsed: merge.Patch, actor: Actor, if_match: int | None
) -> tuple[Thread, bool] | None:
    """PostgreSQL's fast path: read the thread without a lock, apply the rules in Python, then
    write only if the row is still at the version read (compare-and-set).

    Every write to a thread bumps ``version``, so an unchanged version means an unchanged row: what
    was merged, validated and diffed is exactly what gets replaced, and ``If-Match`` was checked
    against it. Nothing is held while Python works, and the write is a single statement (no
    BEGIN/COMMIT round trips). Returns None when another writer changed the row in between; the
    caller then takes the row lock and starts again.
    """
    thread = selectors.thread_get(org, thread_id)
    values, changes = _plan(thread, parsed, if_match)
    if not changes:
        return thread, False
    if not _write(thread, values, actor, changes):
        return None
    return thread, True


_CONTENDED_SECONDS = 1.0
_recently_contended: dict[str, float] = {}  # thread id -> when a compare-and-set on it last failed


def _contended(thread_id: Any, *, mark: bool = False) -> bool:
    """Whether a compare-and-set on this thread failed in the last second (in this process).

    Under a burst of writes to one thread most compare-and-sets lose, and each loss costs a read
    and a statement for nothing: for a second after a loss, writes to that thread go straight to
    the row lock, which queues them. A hint only: either path is correct.
    """
    key, now = str(thread_id), time.monotonic()
    if mark:
        if len(_recently_contended) > 10_000:
            _recently_contended.clear()  # bounded
        _recently_contended[key] = now
        return True
    return now - _recently_contended.get(key, -_CONTENDED_SECONDS) < _CONTENDED_SECONDS


def _write(thread: Thread, values: merge.State, actor: Actor, changes: dict) -> bool:
    """Store the changed fields, bump the version and record the event, if the row is still at
    ``thread.version``; then ``thread`` is as stored. Returns whether it wrote."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        if not _write_if_version(thread, values, now, actor, changes):
            return False
        _apply(thread, values, now)
        return True
    _apply(thread, values, now)
    thread.save(update_fields=[*values, "version", "updated_at"])  # under the lock: SQLite only
    _record(thread, Event.Action.UPDATED, actor, changes, thread.version)
    return True


def _write_if_version(
    thread: Thread, values: merge.State, now: datetime, actor: Actor, changes: dict
) -> bool:
    """PostgreSQL: one statement sets the changed fields and bumps the version if the row is still
    at ``thread.version``, and records the history event in the same statement (a data-modifying
    CTE is atomic on its own). Returns whether it wrote."""
    quote = connection.ops.quote_name
    thread_fields = [Thread._meta.get_field(attr) for attr in values]
    event_fields = [Event._meta.get_field(name) for name in _EVENT_COLUMNS]
    event = {
        "organization": thread.organization_id, "thread_id": thread.pk, "action": Event.Action.UPDATED,
        "actor_type": actor.type, "actor_id": actor.id[:128], "actor_name": actor.name[:200],
        "changes": changes, "created_at": now,
    }
    sql = (
        f"WITH updated AS (UPDATE {quote(Thread._meta.db_table)} SET "
        + "".join(f"{quote(field.column)} = %s, " for field in thread_fields)
        + f"{quote('version')} = {quote('version')} + 1, {quote('updated_at')} = %s"
        f" WHERE {quote('id')} = %s AND {quote('version')} = %s RETURNING {quote('version')})"
        f" INSERT INTO {quote(Event._meta.db_table)}"
        f" ({', '.join(quote(field.column) for field in event_fields)}, {quote('version')})"
        f" SELECT {', '.join('%s' for _ in event_fields)}, updated.{quote('version')} FROM updated"
    )
    params = [
        *(field.get_db_prep_save(values[field.attname], connection) for field in thread_fields),
        now, thread.pk, thread.version,
        *(field.get_db_prep_save(event[field.name], connection) for field in event_fields),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


_EVENT_COLUMNS = ("organization", "thread_id", "action", "actor_type", "actor_id", "actor_name",
                  "changes", "created_at")


def thread_delete(
    *, org: Organization, thread_id: Any, actor: Actor, if_match: int | None = None
) -> None:
    """Delete a thread and its messages; its history stays (action ``deleted``)."""
    with transaction.atomic():
        thread = _lock(org, thread_id)
        _check_version(thread, if_match)
        _record(thread, Event.Action.DELETED, actor, {}, thread.version + 1)
        Message.objects.filter(thread_id=thread.pk).delete()
        Thread.objects.filter(pk=thread.pk).delete()


def _append(thread: Thread, parsed: dict[str, Any], actor: Actor) -> Message:
    """Add one checked message to a locked thread."""
    now = timezone.now()
    message = Message.objects.create(thread=thread, created_at=now, **parsed)
    changes = {
        "messageCount": {"from": thread.message_count, "to": thread.message_count + 1},
        "lastActivityAt": {"from": _iso(thread.last_activity_at), "to": _iso(now)},
    }
    thread.message_count += 1
    thread.last_activity_at = now
    thread.updated_at = now
    thread.version += 1
    thread.save(update_fields=["message_count", "last_activity_at", "updated_at", "version"])
    _record(thread, Event.Action.MESSAGE_ADDED, actor, changes, thread.version)
    return message


def messages_add(*, org: Organization, thread_id: Any, items: list[Any], actor: Actor) -> list[Message]:
    """Add messages in order, all or none; each raises ``messageCount`` and writes one event."""
    parsed = [merge.parse_message(item) for item in items]
    with transaction.atomic():
        thread = _lock(org, thread_id)
        return [_append(thread, p, actor) for p in parsed]


def message_add(*, org: Organization, thread_id: Any, data: Any, actor: Actor) -> Message:
    return messages_add(org=org, thread_id=thread_id, items=[data], actor=actor)[0]


def threads_bulk_update(
    *, org: Organization, ids: Iterable[Any], patch: Any, actor: Actor
) -> int:
    """Apply one patch to many threads, each in its own transaction. Ids of other
    organizations (or no thread) are skipped. Returns how many threads changed."""
    parsed = merge.parse_patch(patch)  # a bad patch fails before anything is written
    changed = 0
    for thread_id in ids:
        try:
            changed += _update(org, thread_id, parsed, actor, None)[1]
        except ThreadError as error:
            if error.code != "thread_not_found":
                raise
    return changed
