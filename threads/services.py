"""Every write to a thread. Each service is one transaction that also records one history event.

The doors (REST API, seed surfaces, admin, operator pages, commands) call these and nothing else
assigns a thread's fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import merge, merge_sql, selectors
from .errors import ThreadError, invalid
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


def _lock(org: Organization, thread_id: Any) -> Thread:
    """The thread, row-locked until the transaction ends, or ``thread_not_found``."""
    return selectors.thread_get(org, thread_id, lock=True)


def _actor_fields(actor: Actor) -> dict[str, str]:
    return {"actor_type": actor.type, "actor_id": actor.id[:128], "actor_name": actor.name[:200]}


def _record(thread: Thread, action: str, actor: Actor, changes: dict, version: int) -> Event:
    return Event.objects.create(
        organization_id=thread.organization_id,
        thread_id=thread.pk,
        action=action,
        version=version,
        changes=changes,
        created_at=timezone.now(),
        **_actor_fields(actor),
    )


def thread_create(
    *,
    org: Organization,
    data: Any,
    actor: Actor,
    messages: Iterable[Any] = (),
    created_at: datetime | None = None,
) -> Thread:
    """Create a thread from a canonical body (``id`` allowed), optionally with first messages.

    Raises ``thread_exists`` (409) when a client-supplied id is already used, also by a deleted
    thread: its history stays under that id. ``created_at`` (default: now) lets an import keep
    the exported creation time.
    """
    patch = merge.parse_patch(data, allow_id=True)
    state = merge.apply_patch(merge.DEFAULT_STATE, patch)
    merge.validate_state(state)
    parsed_messages = [merge.parse_message(m) for m in messages]
    now = timezone.now()
    thread = Thread(
        id=patch.get("id") or uuid.uuid4(),
        organization=org,
        created_at=created_at or now,
        updated_at=now,
        version=1,
        **state,
    )
    try:
        with transaction.atomic():
            thread.save(force_insert=True)
            _record(thread, Event.Action.CREATED, actor, merge.diff(merge.DEFAULT_STATE, state), 1)
            for parsed in parsed_messages:
                _append(thread, parsed, actor)
    except IntegrityError:
        if Thread.objects.filter(pk=thread.pk).exists() or Event.objects.filter(thread_id=thread.pk).exists():
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
    replace: frozenset[str] = frozenset(),
) -> Thread:
    """The merge PATCH (``threads.merge``'s rules). Validates completely before writing; a no-op writes nothing.

    ``fields`` narrows what may be written (a chat token: metadata and variables). ``replace``
    names map fields whose value in the patch *replaces* the stored map (OpenAI's update): under
    the row lock it becomes the merge patch from the stored map to it (``merge.map_patch``: new
    keys set, removed keys null), so the same rules, limits and history apply.
    Returns the thread as stored after the call.
    """
    parsed = merge.parse_patch(patch, fields=fields)
    if not replace & set(parsed):
        return _update(org, thread_id, parsed, actor, if_match)[0]
    with transaction.atomic():
        stored = _lock(org, thread_id)
        for name in replace & set(parsed):
            parsed[name] = merge.map_patch(getattr(stored, merge.WRITABLE[name]), parsed[name])
        return _update(org, thread_id, parsed, actor, if_match)[0]


class Rendering(NamedTuple):
    """How a door writes a thread out, for ``thread_update_rendered``: ``sql``, an expression over
    the thread's columns (named as ``"threads_thread"."title"``) that PostgreSQL evaluates in the
    PATCH's own statement; ``python``, the same from a ``Thread``, for the other databases."""

    sql: str
    python: Callable[[Thread], str]


def thread_update_rendered(
    *,
    org: Organization,
    thread_id: Any,
    patch: Any,
    actor: Actor,
    rendering: Rendering,
    if_match: int | None = None,
    fields: frozenset[str] | None = None,
) -> tuple[int, str]:
    """``thread_update``, answering the thread's version after it and the thread as ``rendering``
    writes it. On PostgreSQL the statement that writes the thread renders it too: no model is built
    and no JSON map decoded to be encoded again (a fifth of a PATCH's CPU in the server)."""
    parsed = merge.parse_patch(patch, fields=fields)
    if connection.vendor == "postgresql":
        now = timezone.now()
        return merge_sql.update_rendered(org.pk, thread_id, parsed, if_match, _actor_fields(actor), now, rendering.sql)
    thread = _update(org, thread_id, parsed, actor, if_match)[0]
    return thread.version, rendering.python(thread)


def _update(
    org: Organization, thread_id: Any, parsed: merge.Patch, actor: Actor, if_match: int | None
) -> tuple[Thread, bool]:
    """The merge PATCH of a parsed patch: the thread as stored after it, and whether it changed.

    PostgreSQL runs it as one statement (merge_sql.py), which holds the row lock only while it
    runs; SQLite's transaction holds the database's write lock (immediate transactions)."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        return merge_sql.update(org.pk, thread_id, parsed, if_match, _actor_fields(actor), now)
    with transaction.atomic():
        thread = _lock(org, thread_id)
        merge.check_version(thread.version, if_match)
        old = state_of(thread)
        new, changes = merge.plan(old, parsed)
        if not changes:
            return thread, False
        changed = [attr for attr in new if new[attr] != old[attr]]
        for attr in changed:
            setattr(thread, attr, new[attr])
        thread.version += 1
        thread.updated_at = now
        thread.save(update_fields=[*changed, "version", "updated_at"])
        _record(thread, Event.Action.UPDATED, actor, changes, thread.version)
    return thread, True


def thread_delete(*, org: Organization, thread_id: Any, actor: Actor, if_match: int | None = None) -> None:
    """Delete a thread and its messages; its history stays (action ``deleted``)."""
    with transaction.atomic():
        thread = _lock(org, thread_id)
        merge.check_version(thread.version, if_match)
        _record(thread, Event.Action.DELETED, actor, {}, thread.version + 1)
        Message.objects.filter(thread_id=thread.pk).delete()
        Thread.objects.filter(pk=thread.pk).delete()


def _append(thread: Thread, parsed: dict[str, Any], actor: Actor) -> Message:
    """Add one checked message to a locked thread. An exported message (``parse_message(...,
    exported=True)``) keeps its ``id`` and ``created_at``; ``lastActivityAt`` never goes back."""
    now = timezone.now()
    fields = {"created_at": now, **parsed}
    message = Message.objects.create(thread=thread, **fields)
    last = thread.last_activity_at
    activity = fields["created_at"] if last is None else max(last, fields["created_at"])
    changes = {
        "messageCount": {"from": thread.message_count, "to": thread.message_count + 1},
        "lastActivityAt": {"from": merge.format_datetime(last), "to": merge.format_datetime(activity)},
    }
    thread.message_count += 1
    thread.last_activity_at = activity
    thread.updated_at = now
    thread.version += 1
    thread.save(update_fields=["message_count", "last_activity_at", "updated_at", "version"])
    _record(thread, Event.Action.MESSAGE_ADDED, actor, changes, thread.version)
    return message


def thread_copy(*, org: Organization, thread_id: Any, actor: Actor) -> Thread:
    """A new thread with a copy of another's writable fields and messages (new ids, in order),
    read under the source's row lock so that the copy is of one moment. Written as
    ``thread_create`` writes a thread with first messages: a ``created`` event, then one
    ``message_added`` event a message."""
    with transaction.atomic():
        source = _lock(org, thread_id)
        data = {name: getattr(source, attr) for name, attr in merge.WRITABLE.items()}
        messages = Message.objects.filter(thread_id=source.pk).order_by("created_at", "id")
        copied = [{"role": m.role, "content": m.content, "metadata": m.metadata} for m in messages]
        return thread_create(org=org, data=data, actor=actor, messages=copied)


def message_delete(
    *, org: Organization, thread_id: Any, message_id: Any, actor: Actor, if_match: int | None = None
) -> Thread:
    """Delete one message of a thread, in one transaction: ``messageCount`` one lower, the version
    one higher, a ``message_deleted`` event whose changes name the message
    (``messageId: {from: id, to: null}``). ``lastActivityAt`` stays: it is when the last message
    was added. Raises ``thread_not_found``, ``version_mismatch`` (checked under the lock) or
    ``not_found`` for a message id that is not one of this thread's."""
    with transaction.atomic():
        thread = _lock(org, thread_id)
        merge.check_version(thread.version, if_match)
        try:
            pk = uuid.UUID(str(message_id))
        except ValueError:
            pk = None
        if pk is None or not Message.objects.filter(pk=pk, thread_id=thread.pk).delete()[0]:
            raise ThreadError("not_found", "Message not found.", "messageId")
        changes = {
            "messageCount": {"from": thread.message_count, "to": thread.message_count - 1},
            "messageId": {"from": str(pk), "to": None},
        }
        thread.message_count -= 1
        thread.updated_at = timezone.now()
        thread.version += 1
        thread.save(update_fields=["message_count", "updated_at", "version"])
        _record(thread, Event.Action.MESSAGE_DELETED, actor, changes, thread.version)
    return thread


def messages_add(*, org: Organization, thread_id: Any, items: list[Any], actor: Actor) -> list[Message]:
    """Add messages in order, all or none; each raises ``messageCount`` and writes one event."""
    parsed = [merge.parse_message(item) for item in items]
    with transaction.atomic():
        thread = _lock(org, thread_id)
        return [_append(thread, p, actor) for p in parsed]


def message_add(*, org: Organization, thread_id: Any, data: Any, actor: Actor) -> Message:
    return messages_add(org=org, thread_id=thread_id, items=[data], actor=actor)[0]


def threads_bulk_update(*, org: Organization, ids: Iterable[Any], patch: Any, actor: Actor) -> int:
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


IMPORT_FIELDS = frozenset(merge.WRITABLE) | merge.READ_ONLY | {"messages"}


def thread_import(*, org: Organization, data: Any, actor: Actor, new_ids: bool = False) -> str:
    """Create or merge one exported thread (the canonical shape plus ``messages``, each in the
    canonical message shape), keeping the thread's ``id`` and ``createdAt`` and its messages'
    ``id`` and ``createdAt``. Idempotent, all or nothing, under the same rules as the API:

    - a new id: ``thread_create`` with the writable fields, then every message;
    - an id of this organization: the writable fields go through the merge PATCH (a no-op when
      equal: no event, no new version), then only the messages whose ids are missing;
    - an id used by another organization or by a deleted thread (whose history is kept), or a
      message id used by another thread: ``thread_exists``, nothing written.

    Read-only fields (``version``, ``messageCount``…) are accepted and ignored: the service
    keeps them. Returns ``"created"``, ``"updated"`` or ``"unchanged"``.

    With ``new_ids`` the thread and its messages are imported under ids of ``org``'s own
    (``import_id``): a copy of another organization's threads in the same database, e.g. a
    staging copy. The copy's history starts at its import like any new thread's, and importing
    the same file again finds the same copies (still idempotent).
    """
    thread_id, created_at, fields, messages = _parse_export(data)
    if new_ids:
        thread_id = str(import_id(org, "thread", thread_id))
        messages = [{**message, "id": str(import_id(org, "message", message["id"]))} for message in messages]
    with transaction.atomic():
        existing = Thread.objects.select_for_update().filter(pk=thread_id).first()
        if existing is not None and existing.organization_id != org.pk:
            raise ThreadError("thread_exists", "The id belongs to another organization.", "id")
        if existing is None and Event.objects.filter(thread_id=thread_id).exists():
            raise ThreadError("thread_exists", "The id belonged to a deleted thread.", "id")
        if existing is None:
            data = {"id": thread_id, **fields}
            thread = thread_create(org=org, data=data, actor=actor, created_at=created_at)
            outcome = "created"
        else:
            thread, changed = _update(org, thread_id, merge.parse_patch(fields), actor, None)
            outcome = "updated" if changed else "unchanged"
        owners = _message_owners([m["id"] for m in messages])
        for i, message in enumerate(messages):
            key = uuid.UUID(message["id"])
            owner = owners.get(key)
            if owner is None:
                _append(thread, message, actor)
                owners[key] = thread.pk  # a message listed twice is added once
                outcome = "updated" if outcome == "unchanged" else outcome
            elif owner != thread.pk:
                message_error = "The message id belongs to another thread."
                raise ThreadError("thread_exists", message_error, f"messages[{i}].id")
    return outcome


def import_id(org: Organization, kind: str, exported_id: Any) -> uuid.UUID:
    """The id an exported thread or message takes in ``org`` under ``import_threads --new-ids``:
    derived from the organization and the exported id (UUID version 5), so that it is new to
    every other organization and the same at every import into this one."""
    return uuid.uuid5(org.pk, f"{kind}:{uuid.UUID(str(exported_id))}")


OWNER_LOOKUP_BATCH = 10_000  # ids per query: far below the 65,535 parameters of a statement


def _message_owners(ids: list[Any]) -> dict[uuid.UUID, uuid.UUID]:
    """Message id → thread id for those of ``ids`` that exist, a batch of ids per query."""
    owners: dict = {}
    for start in range(0, len(ids), OWNER_LOOKUP_BATCH):
        batch = ids[start : start + OWNER_LOOKUP_BATCH]
        owners.update(Message.objects.filter(pk__in=batch).values_list("pk", "thread"))
    return owners


def _parse_export(data: Any) -> tuple[str, datetime | None, dict[str, Any], list[dict[str, Any]]]:
    """Check one exported thread completely before anything is written."""
    if not isinstance(data, dict):
        raise invalid("A thread must be a JSON object.")
    unknown = sorted(set(data) - IMPORT_FIELDS)
    if unknown:
        raise invalid(f"Unknown field '{unknown[0]}'.", unknown[0])
    thread_id = merge.parse_uuid(data.get("id"), "id")
    created_at = None
    if "createdAt" in data:
        created_at = merge.parse_datetime(data["createdAt"], "createdAt")
    fields = {name: data[name] for name in merge.WRITABLE if name in data}
    merge.parse_patch(fields)
    items = data.get("messages", [])
    if not isinstance(items, list):
        raise invalid("'messages' must be a list.", "messages")
    messages = []
    for i, item in enumerate(items):
        try:
            messages.append(merge.parse_message(item, exported=True))
        except ThreadError as error:
            param = f"messages[{i}]" + (f".{error.param}" if error.param else "")
            raise ThreadError(error.code, error.message, param) from None
    return thread_id, created_at, fields, messages
