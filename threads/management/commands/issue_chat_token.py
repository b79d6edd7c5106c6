import uuid

from django.core.management.base import BaseCommand, CommandError

from threads.api.tokens import CHAT_TTL_DEFAULT, CHAT_TTL_MAX, CHAT_TTL_MIN, ChatToken
from threads.models import Thread


class Command(BaseCommand):
    help = "Print a chat token for one thread, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("thread_id")
        parser.add_argument("--ttl", type=int, default=CHAT_TTL_DEFAULT,
                            help=f"Seconds, {CHAT_TTL_MIN}–{CHAT_TTL_MAX} (default {CHAT_TTL_DEFAULT}).")

    def handle(self, *args, thread_id, ttl, **options):
        if not CHAT_TTL_MIN <= ttl <= CHAT_TTL_MAX:
            raise CommandError(f"--ttl must be from {CHAT_TTL_MIN} to {CHAT_TTL_MAX} seconds.")
        thread = Thread.objects.filter(pk=thread_id).first() if _is_uuid(thread_id) else None
        if thread is None:
            raise CommandError(f"No thread {thread_id}.")
        token = ChatToken.for_thread(thread, ttl)
        self.stdout.write(f"Chat token for thread {thread.pk}, valid {ttl} s:")
        self.stdout.write(str(token))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
