from datetime import timedelta

from django.core.management.base import CommandError
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from threads.errors import ThreadError
from threads.models import Organization, Thread
from threads.services import Actor, thread_update

from ._common import OperatorCommand, Progress, get_org

BATCH = 500


class Command(OperatorCommand):
    help = (
        "Archive the threads (not archived yet) whose last message — or creation, when they have "
        "none — is older than N days. Each goes through the merge PATCH, so its history records "
        "it; a thread that changes meanwhile is left for the next run. Prints the count."
    )

    def add_arguments(self, parser):
        parser.add_argument("--inactive-days", type=int, required=True, metavar="N")
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args, inactive_days, org, dry_run, **options):
        if inactive_days < 0:
            raise CommandError("--inactive-days must be 0 or more.")
        cutoff = timezone.now() - timedelta(days=inactive_days)
        stale = (
            Thread.objects.filter(is_archived=False)
            .alias(activity=Coalesce(F("last_activity_at"), F("created_at")))
            .filter(activity__lt=cutoff)
        )
        if org:
            stale = stale.filter(organization=get_org(org))
        total = stale.count()
        if dry_run:
            self.stdout.write(f"{total} threads would be archived (dry run).")
            return
        archived = self.archive(stale, Progress(self, total, "Archiving"))
        self.stdout.write(f"{archived} threads archived.")

    def archive(self, stale, progress: Progress) -> int:
        actor, orgs, archived, after = Actor.command("archive_stale_threads"), {}, 0, None
        while True:
            page = stale.filter(pk__gt=after) if after else stale
            rows = list(page.order_by("pk").values_list("pk", "organization_id", "version")[:BATCH])
            if not rows:
                break
            for pk, org_id, version in rows:
                if org_id not in orgs:
                    orgs[org_id] = Organization.objects.get(pk=org_id)
                try:  # if_match: a thread that moved since it was selected is not archived
                    thread_update(
                        org=orgs[org_id], thread_id=pk, patch={"isArchived": True}, actor=actor, if_match=version
                    )
                    archived += 1
                except ThreadError as error:
                    if error.code not in ("version_mismatch", "thread_not_found"):
                        raise
            after = rows[-1][0]
            progress.advance(len(rows))
        progress.close()
        return archived
