"""Organizations, their people and keys, threads, messages and the change history.

No save() overrides and no signals: every write goes through ``threads.services``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "member"
        VIEWER = "viewer", "viewer"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "read"
        WRITE = "write", "write"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Thread(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Every index below starts with the organization: one on it alone would only cost writes.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="threads", db_index=False)
    title = models.CharField(max_length=256, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    is_archived = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    visible_in_ui = models.BooleanField(default=True)
    is_pinned = models.BooleanField(default=False)
    project_id = models.CharField(max_length=128, null=True, blank=True)
    assistant_id = models.CharField(max_length=128, null=True, blank=True)
    user_id = models.CharField(max_length=128, null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="thread_org_created"),
            models.Index(fields=["organization", "-updated_at", "-id"], name="thread_org_updated"),
            models.Index(fields=["organization", "-last_activity_at", "-id"], name="thread_org_activity"),
            models.Index(fields=["organization", "title", "id"], name="thread_org_title"),
            models.Index(fields=["organization", "-message_count", "-id"], name="thread_org_messages"),
            # Filters on a flag few threads have, in the lists' default order (the operator list
            # hides archived threads): partial, so only the hidden, inactive or pinned rows pay
            # for them on a write.
            *[
                models.Index(fields=["organization", "is_archived", "-updated_at", "-id"], name=name, condition=flag)
                for name, flag in (
                    ("thread_org_hidden", models.Q(visible_in_ui=False)),
                    ("thread_org_inactive", models.Q(is_active=False)),
                    ("thread_org_pinned", models.Q(is_pinned=True)),
                )
            ],
            models.Index(fields=["organization", "is_archived", "-created_at"], name="thread_org_archived"),
            models.Index(fields=["organization", "project_id"], name="thread_org_project"),
            models.Index(fields=["organization", "assistant_id"], name="thread_org_assistant"),
            models.Index(fields=["organization", "user_id"], name="thread_org_user"),
        ]
        # PostgreSQL also gets GIN indexes on metadata and tags (migration 0002).

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "user"
        ASSISTANT = "assistant", "assistant"
        SYSTEM = "system", "system"
        TOOL = "tool", "tool"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["thread", "created_at", "id"], name="message_thread_created")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Event(models.Model):
    """One change to a thread. Kept after the thread is deleted (no foreign key to it)."""

    class Action(models.TextChoices):
        CREATED = "created", "created"
        UPDATED = "updated", "updated"
        MESSAGE_ADDED = "message_added", "message added"
        MESSAGE_DELETED = "message_deleted", "message deleted"
        DELETED = "deleted", "deleted"

    class ActorType(models.TextChoices):
        USER = "user", "user"
        API_KEY = "api_key", "API key"
        CHAT_TOKEN = "chat_token", "chat token"
        COMMAND = "command", "command"

    id = models.BigAutoField(primary_key=True)
    # Indexed with the id below (an organization's history newest first), not on its own. No
    # database constraint: checking it locked the organization's row (FOR KEY SHARE) at the commit
    # of every event, one row shared by every writer of the organization (5% of PostgreSQL's CPU
    # per PATCH under load). The services write an event only with its thread's organization, and
    # deleting an organization still deletes its events (Django's cascade).
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    thread_id = models.UUIDField(db_index=False)
    action = models.CharField(max_length=16, choices=Action.choices)
    version = models.PositiveIntegerField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=128, blank=True, default="")
    actor_name = models.CharField(max_length=200, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The writing transaction's id on PostgreSQL, set by a trigger (migration 0005): the change
    # feed's order (threads/feed.py). 0 on SQLite, where ids commit in order.
    txid = models.BigIntegerField(db_default=0, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["thread_id", "version"], name="event_thread_version")]
        indexes = [
            models.Index(fields=["thread_id", "-id"], name="event_thread_newest"),
            models.Index(fields=["organization", "-id"], name="event_org_newest"),
            models.Index(fields=["organization", "txid", "id"], name="event_feed"),
            # The admin's filter by a deletion (of a thread or of a message): actions too rare to
            # find by reading the organization's events in order. Partial, so no other write (a
            # PATCH, a message added) maintains it.
            models.Index(
                fields=["organization", "-id"],
                name="event_org_deleted",
                condition=models.Q(action__in=["deleted", "message_deleted"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} v{self.version} of {self.thread_id}"
