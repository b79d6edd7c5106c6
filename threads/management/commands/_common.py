"""Shared by the commands: look up an organization or a thread, fail with one clear line, and
draw a progress bar."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from threads import selectors
from threads.errors import ThreadError
from threads.models import Organization, Thread


class OperatorCommand(BaseCommand):
    """A command whose every bad input — a bad flag included — ends with one line on stderr and
    exit status 1. (argparse alone prints the usage too and exits with status 2.)"""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> None:
            if parser.called_from_command_line:
                parser.exit(1, f"CommandError: {message} (see --help)\n")
            raise CommandError(f"Error: {message}")

        parser.error = error
        return parser


def get_org(slug: str) -> Organization:
    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        raise CommandError(f"No organization '{slug}'.")
    return org


def find_thread(thread_id: str, org_slug: str | None = None) -> Thread:
    """A thread of any organization (commands are operator tools), or of ``org_slug``'s only."""
    org = get_org(org_slug) if org_slug else selectors.thread_org_of(thread_id)
    try:
        if org is not None:
            return selectors.thread_get(org, thread_id)
    except ThreadError:
        pass
    where = f" in organization '{org_slug}'" if org_slug else ""
    raise CommandError(f"No thread '{thread_id}'{where}.")


def command_error(error: ThreadError) -> CommandError:
    """A domain error as one line: its code, message and the parameter it is about."""
    where = f" (param: {error.param})" if error.param else ""
    return CommandError(f"{error.code}: {error.message}{where}")


class Progress:
    """A one-line bar on stderr, drawn only when stdout is a terminal, so that scripts and pipes
    see nothing of it. Twenty lines of our own rather than a dependency (tqdm) for one bar."""

    WIDTH = 30

    def __init__(self, command: BaseCommand, total: int, label: str, unit: str = "") -> None:
        self.enabled = command.stdout.isatty() and total > 0
        self.out, self.total, self.label, self.unit = command.stderr, total, label, unit
        self.done, self.drawn = 0, 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (now - self.drawn < 0.2 and self.done < self.total):
            return
        self.drawn = now
        filled = min(self.WIDTH, self.WIDTH * self.done // self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        count = f"{self.done:,}/{self.total:,}{self.unit}"
        self.out.write(f"\r{self.label} [{bar}] {count}", str, ending="")
        self.out.flush()

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.out.write("", str)
