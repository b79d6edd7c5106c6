import faulthandler
import signal
import sys
import threading

from django.conf import settings
from django.core.management.base import CommandError

from threads.management.commands._common import OperatorCommand
from threads.webhooks import loop

STOP_MARGIN_SECONDS = 20

# Settings the worker cannot run with: (name, smallest value).
SETTINGS = [
    ("WEBHOOK_TIMEOUT_SECONDS", 0.1),
    ("WEBHOOK_ENDPOINT_CONCURRENCY", 1),
    ("WEBHOOK_BREAKER_FAILURES", 1),
    ("WEBHOOK_DISABLE_AFTER_DAYS", 0),
    ("WEBHOOK_POLL_SECONDS", 0.001),
]


class Command(OperatorCommand):
    help = (
        "Deliver webhook events until SIGTERM or SIGINT (the attempts in flight finish, exit 0). "
        "Run one or more beside the app servers; any number may share the database."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once",
            action="store_true",
            help="Attempt each delivery due now at most once, then exit (within WEBHOOK_TIMEOUT_SECONDS + 2 s).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=loop.DEFAULT_CONCURRENCY,
            metavar="N",
            help=f"Attempts in flight at once, over all endpoints (default {loop.DEFAULT_CONCURRENCY}).",
        )

    def handle(self, *args, once, concurrency, **options):
        if not 1 <= concurrency <= loop.MAX_CONCURRENCY:
            raise CommandError(f"--concurrency must be between 1 and {loop.MAX_CONCURRENCY}.")
        for name, least in SETTINGS:
            if getattr(settings, name) < least:
                raise CommandError(f"{name} must be at least {least:g}.")
        if not settings.WEBHOOK_RETRY_SCHEDULE or min(settings.WEBHOOK_RETRY_SCHEDULE) < 0:
            raise CommandError("WEBHOOK_RETRY_SCHEDULE must be a list of seconds, none negative.")
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)  # kill -USR1: every thread's stack
        stop = threading.Event()

        def on_signal(*_):
            stop.set()
            # The attempts in flight end within the timeout; a worker still running well after
            # that prints every thread's stack and exits 1 (its leases run out: nothing is lost).
            faulthandler.dump_traceback_later(settings.WEBHOOK_TIMEOUT_SECONDS + STOP_MARGIN_SECONDS, exit=True)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        loop.run(stop, once=once, concurrency=concurrency)
        # Stopped, with nothing left in flight: a further SIGTERM or SIGINT (a supervisor's or a
        # second Ctrl-C) is ignored. Python puts back the default action, death by the signal,
        # while the interpreter shuts down, which turned a clean stop into exit -15 (seen in CI).
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
