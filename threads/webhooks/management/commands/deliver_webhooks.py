import signal
import threading

from django.core.management.base import BaseCommand

from threads.webhooks import worker


class Command(BaseCommand):
    help = (
        "Deliver webhook events until SIGTERM or SIGINT (the attempts in flight finish, exit 0). "
        "Run one or more beside the app servers; any number may share the database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Make every attempt due now, then exit.")
        parser.add_argument("--concurrency", type=int, default=4, help="Attempts in flight at once (4).")

    def handle(self, *args, once, concurrency, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        worker.run(stop, once=once, concurrency=max(1, concurrency))
