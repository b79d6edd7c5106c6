import random
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from threads.keys import api_key_create
from threads.models import Membership, Organization
from threads.services import Actor, message_add, thread_create

TOPICS = ["billing", "onboarding", "bug", "feature-request", "refund", "login", "export", "api"]
TITLES = ["Cannot log in", "Invoice question", "Export to CSV", "Webhook retries",
          "Upgrade plan", "Reset password", "Slow responses", "Add a teammate"]


class Command(BaseCommand):
    help = "Create a demo organization, an admin user, a write API key and some threads."

    def add_arguments(self, parser):
        parser.add_argument("--org", default="demo", help="Organization slug (default: demo).")
        parser.add_argument("--threads", type=int, default=25, help="How many threads.")
        parser.add_argument("--first-run", action="store_true",
                            help="Do nothing when any organization exists already.")

    def handle(self, *args, org, threads, first_run, **options):
        if first_run and Organization.objects.exists():
            return
        if threads < 0:
            raise CommandError("--threads must be 0 or more.")
        if Organization.objects.filter(slug=org).exists():
            raise CommandError(f"Organization '{org}' already exists.")
        username, password = f"{org}-admin", secrets.token_urlsafe(12)
        with transaction.atomic():
            organization = Organization.objects.create(slug=org, name=f"{org.title()} organization")
            user = get_user_model().objects.create_user(
                username=username, password=password, is_staff=True, is_superuser=True
            )
            Membership.objects.create(user=user, organization=organization)
            _, raw = api_key_create(org=organization, name="demo", scope="write")
        actor = Actor.command("seed_demo")
        rng = random.Random(7)
        for i in range(threads):
            thread = thread_create(org=organization, actor=actor, data={
                "title": f"{rng.choice(TITLES)} #{i + 1}",
                "tags": rng.sample(TOPICS, k=rng.randint(0, 3)),
                "metadata": {"priority": rng.choice(["low", "normal", "high"]),
                             "channel": rng.choice(["web", "email", "chat"])},
                "variables": {"customer_name": f"Customer {i + 1}"},
                "isArchived": rng.random() < 0.1,
            })
            for role in ("user", "assistant"):
                message_add(org=organization, thread_id=thread.pk, actor=actor,
                            data={"role": role, "content": f"Demo {role} message."})
        self.stdout.write(f"Organization '{org}' with {threads} threads.")
        self.stdout.write(f"Admin and operator pages: user '{username}', password '{password}'.")
        self.stdout.write("Write API key (shown once):")
        self.stdout.write(raw)
