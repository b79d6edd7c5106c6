"""Every read, scoped to one organization. Another organization's thread is simply not found."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from .errors import not_found
from .models import Event, Message, Organization, Thread


def thread_qs(org: Organization) -> QuerySet[Thread]:
    return Thread.objects.filter(organization=org)


def thread_get(org: Organization, thread_id: Any) -> Thread:
    """The thread, or ``thread_not_found`` for a non-UUID id or another organization's thread."""
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        raise not_found() from None
    thread = thread_qs(org).filter(pk=pk).first()
    if thread is None:
        raise not_found()
    return thread


def thread_messages(org: Organization, thread_id: Any) -> QuerySet[Message]:
    thread = thread_get(org, thread_id)
    return Message.objects.filter(thread_id=thread.pk)


def thread_events(org: Organization, thread_id: Any) -> QuerySet[Event]:
    """Events of a live thread (a deleted thread's events are only for the admin)."""
    thread = thread_get(org, thread_id)
    return Event.objects.filter(organization=org, thread_id=thread.pk)


def thread_org_of(thread_id: Any) -> Organization | None:
    """For operator commands, which reach every organization: the owner of a thread id, or None."""
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        return None
    return Organization.objects.filter(threads__pk=pk).first()
