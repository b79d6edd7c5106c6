from datetime import UTC, datetime

from django.core.management.base import CommandError

from threads.api.tokens import CHAT_TTL_DEFAULT, CHAT_TTL_MAX, CHAT_TTL_MIN, ChatToken
from threads.merge import format_datetime

from ._common import OperatorCommand, find_thread


class Command(OperatorCommand):
    help = (
        "Issue a chat token for one thread (of any organization): it may read and change that "
        "thread's metadata and variables and its messages. The token is alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("thread_id")
        parser.add_argument("--org", help="Organization slug: only a thread of this organization.")
        parser.add_argument(
            "--ttl",
            type=int,
            default=CHAT_TTL_DEFAULT,
            metavar="SECONDS",
            help=f"Lifetime, {CHAT_TTL_MIN} to {CHAT_TTL_MAX} (default: {CHAT_TTL_DEFAULT}).",
        )

    def handle(self, *args, thread_id, org, ttl, **options):
        if not CHAT_TTL_MIN <= ttl <= CHAT_TTL_MAX:
            raise CommandError(f"--ttl must be from {CHAT_TTL_MIN} to {CHAT_TTL_MAX} seconds.")
        thread = find_thread(thread_id, org)
        token = ChatToken.for_thread(thread, ttl)
        expires = format_datetime(datetime.fromtimestamp(token["exp"], tz=UTC))
        self.stdout.write(f"Chat token for thread {thread.pk}, expires at {expires}:")
        self.stdout.write(str(token))
