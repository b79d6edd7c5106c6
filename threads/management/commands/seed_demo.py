import os
import random
import secrets
import sys
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from threads import merge
from threads.keys import api_key_create
from threads.models import Event, Membership, Message, Organization, Thread
from threads.services import Actor

from ._common import OperatorCommand, Progress

BATCH = 5000
TOPICS = ["billing", "onboarding", "bug", "feature-request", "refund", "login", "export", "api"]
TITLES = [
    "Cannot log in",
    "Invoice question",
    "Export to CSV",
    "Webhook retries",
    "Upgrade plan",
    "Reset password",
    "Slow responses",
    "Add a teammate",
]
ASKS = ["Hi, {t} — can you help?", "Hello! Question about: {t}.", "{t}: it keeps happening."]
ANSWERS = [
    "Thanks for reaching out, {n}. Let me look into it.",
    "Sure, {n} — here is what to do.",
    "Sorry about that, {n}. A fix is on its way.",
]


class Command(OperatorCommand):
    help = (
        "Create a demo organization, an admin user, a write API key (printed alone on the last "
        "line) and N threads with tags, metadata, variables, messages and their history. "
        "Rows are bulk-inserted, 5,000 threads a transaction (each INSERT within the 65,535 "
        "parameters PostgreSQL binds to a statement), so a million threads take minutes. "
        "With --existing, threads are added to an organization that exists already."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", default="demo", help="Organization slug (default: demo).")
        parser.add_argument("--threads", type=int, default=25, help="How many threads.")
        parser.add_argument(
            "--existing", action="store_true", help="Add the threads to the organization when it exists already."
        )
        parser.add_argument(
            "--first-run",
            action="store_true",
            help="When any organization exists already, create nothing and say how to "
            "mint a new API key (what `make run` does on later starts).",
        )

    def handle(self, *args, org, threads, existing, first_run, **options):
        if first_run and Organization.objects.exists():
            self._later_start(org)
            return
        if threads < 0:
            raise CommandError("--threads must be 0 or more.")
        organization = Organization.objects.filter(slug=org).first()
        if organization and not existing:
            raise CommandError(f"Organization '{org}' already exists (--existing adds to it).")
        username, password = f"{org}-admin", secrets.token_urlsafe(12)
        with transaction.atomic():
            if organization is None:
                organization = Organization.objects.create(slug=org, name=f"{org.title()} org")
            User = get_user_model()
            new_user = not User.objects.filter(username=username).exists()
            if new_user:
                user = User.objects.create_user(username=username, password=password, is_staff=True, is_superuser=True)
                Membership.objects.create(user=user, organization=organization)
            _, raw = api_key_create(org=organization, name="demo", scope="write")
        seed_threads(organization, threads, Progress(self, threads, "Seeding"))
        self.stdout.write(f"Organization '{org}' with {threads:,} new threads.")
        if new_user:
            self.stdout.write(f"Admin and operator pages: user '{username}', password '{password}'.")
        self.stdout.write("Write API key (shown once):")
        self.stdout.write(raw)

    def _later_start(self, slug: str) -> None:
        """What `make run` says on every start after the first: the key it showed then was shown
        once, so say how to mint another (and how to set the admin's password again)."""
        organization = (
            Organization.objects.filter(slug=slug).first() or Organization.objects.order_by("created_at").first()
        )
        python = _python()
        self.stdout.write(
            f"Organization '{organization.slug}' exists already; its first API key was shown once, on the first start."
        )
        self.stdout.write(f"A new write API key:  {python} manage.py create_api_key --org {organization.slug}")
        admin = f"{organization.slug}-admin"
        if get_user_model().objects.filter(username=admin).exists():
            self.stdout.write(f"A new admin password: {python} manage.py changepassword {admin}")


def _python() -> str:
    """This interpreter as a reader can type it: ``.venv/bin/python`` in the project's own virtualenv."""
    relative = os.path.relpath(sys.executable)
    return sys.executable if relative.startswith("..") else relative


def seed_threads(org: Organization, count: int, progress: Progress) -> None:
    """Bulk-insert ``count`` threads with their messages and the events the services would have
    written (``created`` v1, then one ``message_added`` per message), one transaction a batch.
    Each thread's fields still pass the merge rules (parse, apply, validate, diff)."""
    rng, actor, now = random.Random(), Actor.command("seed_demo"), timezone.now()
    for start in range(0, count, BATCH):
        threads, messages, events = [], [], []
        for i in range(start, min(start + BATCH, count)):
            _demo_thread(org, i, rng, actor, now, threads, messages, events)
        with transaction.atomic():
            Thread.objects.bulk_create(threads)
            Message.objects.bulk_create(messages)
            Event.objects.bulk_create(events)
        progress.advance(len(threads))
    progress.close()


def _demo_thread(org, i, rng, actor, now, threads, messages, events) -> None:
    topic, name = rng.choice(TITLES), f"Customer {i + 1}"
    patch = merge.parse_patch(
        {
            "title": f"{topic} #{i + 1}",
            "tags": rng.sample(TOPICS, k=rng.randint(0, 3)),
            "metadata": {
                "priority": rng.choice(["low", "normal", "high"]),
                "channel": rng.choice(["web", "email", "chat"]),
            },
            "variables": {"customer_name": name, "plan": rng.choice(["free", "team", "enterprise"])},
            "isArchived": rng.random() < 0.1,
            "projectId": f"proj_{rng.randint(1, 20)}",
        }
    )
    state = merge.apply_patch(merge.DEFAULT_STATE, patch)
    merge.validate_state(state)
    created = now - timedelta(days=rng.uniform(0, 120))
    thread = Thread(id=uuid.uuid4(), organization_id=org.pk, created_at=created, **state)
    event = {
        "organization_id": org.pk,
        "thread_id": thread.id,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_name": actor.name,
    }
    events.append(
        Event(
            action=Event.Action.CREATED,
            version=1,
            created_at=created,
            changes=merge.diff(merge.DEFAULT_STATE, state),
            **event,
        )
    )
    at, last, count = created, None, rng.randint(0, 4)
    for n in range(count):
        at += timedelta(seconds=rng.randint(5, 3600))
        role = "user" if n % 2 == 0 else "assistant"
        content = rng.choice(ASKS if role == "user" else ANSWERS).format(t=topic.lower(), n=name)
        messages.append(Message(thread_id=thread.id, role=role, content=content, created_at=at))
        events.append(
            Event(
                action=Event.Action.MESSAGE_ADDED,
                version=n + 2,
                created_at=at,
                **event,
                changes={
                    "messageCount": {"from": n, "to": n + 1},
                    "lastActivityAt": {"from": merge.format_datetime(last), "to": merge.format_datetime(at)},
                },
            )
        )
        last = at
    thread.message_count, thread.version = count, 1 + count
    thread.last_activity_at, thread.updated_at = last, last or created
    threads.append(thread)
