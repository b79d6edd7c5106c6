import json
import os
from collections import Counter

from django.core.management.base import CommandError
from django.db import IntegrityError

from threads.errors import ThreadError
from threads.services import Actor, thread_import

from ._common import OperatorCommand, Progress, command_error, get_org


class Command(OperatorCommand):
    help = (
        "Read a JSON Lines file of export_threads into an organization. Idempotent: a thread is "
        "matched by id (its fields merged, a no-op when equal), a message by id (added when "
        "missing). A bad line — invalid JSON, a field the API would refuse, an id of another "
        "organization — is reported on stderr by number and skipped; the others are imported. "
        "Exits with status 1 when no line was imported (an empty file, or every line skipped) "
        "unless --allow-empty."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument(
            "--new-ids",
            action="store_true",
            help="Import the threads and their messages under new ids of this organization's own "
            "(the same ones at every import into it): copies of another organization's threads in "
            "the same database, e.g. a staging copy.",
        )
        parser.add_argument("--allow-empty", action="store_true", help="Exit 0 even when no line was imported.")

    def handle(self, *args, file, org, new_ids, allow_empty, **options):
        organization, actor, counts = get_org(org), Actor.command("import_threads"), Counter()
        self.new_ids, foreign = new_ids, 0
        try:
            source = open(file, "rb")  # bytes: bad UTF-8 is one bad line
        except OSError as error:
            raise CommandError(f"Cannot read '{file}': {error.strerror}.") from None
        progress = Progress(self, os.fstat(source.fileno()).st_size, "Importing", " bytes")
        with source:
            for number, raw in enumerate(source, 1):
                progress.advance(len(raw))
                if raw.strip():
                    outcome, problem = self.import_line(organization, raw, actor)
                    counts[outcome] += 1
                    if problem:
                        self.stderr.write(f"line {number}: {problem}")
                        foreign += "another organization" in problem
        progress.close()
        self.stdout.write(
            f"imported {counts['created']}, updated {counts['updated']}, "
            f"unchanged {counts['unchanged']}, skipped {counts['skipped']}"
        )
        if not allow_empty and counts["skipped"] == counts.total():
            hint = " Threads of another organization are copied with --new-ids." if foreign else ""
            lines = f"every line was skipped ({counts['skipped']})" if counts["skipped"] else "the file has no lines"
            raise CommandError(f"Nothing was imported: {lines}.{hint} (--allow-empty exits 0 all the same.)")

    def import_line(self, org, raw: bytes, actor) -> tuple[str, str | None]:
        try:
            data = json.loads(raw.decode("utf-8-sig"))  # JSON Lines is UTF-8 (a BOM is let pass)
            return thread_import(org=org, data=data, actor=actor, new_ids=self.new_ids), None
        except ValueError as error:  # bad UTF-8 or bad JSON
            return "skipped", f"invalid_json: {error}"
        except ThreadError as error:
            return "skipped", str(command_error(error))
        except IntegrityError:  # a concurrent writer took an id between check and insert
            return "skipped", "thread_exists: an id is already used."
