import json
from collections import defaultdict
from contextlib import nullcontext

from django.core.management.base import CommandError

from threads.api.serializers import MessageSerializer, ThreadSerializer
from threads.models import Message, Thread
from threads_project.routers import replica_reads

from ._common import OperatorCommand, Progress, get_org

BATCH = 1000


class Command(OperatorCommand):
    help = (
        "Write threads as JSON Lines: one thread a line in the API's shape, with its messages "
        'under "messages" (oldest first). Streams in batches of 1,000 threads by id, so memory '
        "stays flat whatever the count; import_threads reads the file back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--output", metavar="FILE", help="Default: standard output.")

    def handle(self, *args, org, output, **options):
        threads = Thread.objects.filter(organization=get_org(org)) if org else Thread.objects.all()
        progress = Progress(self, replica_reads(threads.count)(), "Exporting")
        try:
            target = open(output, "w", encoding="utf-8") if output else None
        except OSError as error:
            raise CommandError(f"Cannot write '{output}': {error.strerror}.") from None
        write = target.write if target else lambda text: self.stdout.write(text, ending="")
        count = 0
        with target or nullcontext():
            for batch in thread_lines(threads):
                write("".join(line + "\n" for line in batch))
                count += len(batch)
                progress.advance(len(batch))
        progress.close()
        (self.stdout if output else self.stderr).write(
            f"{count} threads exported" + (f" to {output}." if output else "."), str
        )


def thread_lines(threads):
    """Batches of JSON lines, by keyset on the id (no OFFSET, no server-side cursor to hold)."""
    after = None
    while True:
        batch, messages = read_batch(threads, after)
        if not batch:
            return
        yield [
            json.dumps(
                {**data, "messages": MessageSerializer(messages[thread.pk], many=True).data},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for thread, data in zip(batch, ThreadSerializer(batch, many=True).data, strict=True)
        ]
        after = batch[-1].pk


@replica_reads  # an export tolerates lag: a replica's, if there is one (a batch that fails there is read again)
def read_batch(threads, after):
    """The next batch of threads after the id ``after``, and their messages by thread, oldest first."""
    page = threads.filter(pk__gt=after) if after else threads
    batch = list(page.order_by("pk")[:BATCH])
    messages = defaultdict(list)
    for message in Message.objects.filter(thread__in=batch).order_by("created_at", "id") if batch else ():
        messages[message.thread_id].append(message)
    return batch, messages
