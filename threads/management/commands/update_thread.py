import json

from django.core.management.base import CommandError

from threads.api.serializers import ThreadSerializer
from threads.errors import ThreadError
from threads.services import Actor, thread_update

from ._common import OperatorCommand, command_error, find_thread


def pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep:
            raise CommandError(f"{flag} takes KEY=VALUE, not '{value}'.")
        out[key] = item
    return out


class Command(OperatorCommand):
    help = (
        "The merge PATCH from the shell: set or remove metadata keys and variables, change the "
        "title, tags and flags of one thread (of any organization), under the API's rules and "
        "history. Prints the thread as the API renders it."
    )

    def add_arguments(self, parser):
        parser.add_argument("thread_id")
        parser.add_argument("--org", help="Organization slug: only a thread of this organization.")
        parser.add_argument("--set", action="append", default=[], metavar="K=V", help="Metadata.")
        parser.add_argument("--unset", action="append", default=[], metavar="K")
        parser.add_argument("--var", action="append", default=[], metavar="K=V", help="Variable.")
        parser.add_argument("--unset-var", action="append", default=[], metavar="K")
        parser.add_argument("--title")
        parser.add_argument("--tag", action="append", default=[], help="Add a tag.")
        parser.add_argument("--untag", action="append", default=[], help="Remove a tag.")
        for first, second, field in (("archive", "unarchive", "isArchived"), ("show", "hide", "visibleInUi")):
            group = parser.add_mutually_exclusive_group()
            group.add_argument(f"--{first}", dest=field, action="store_true", default=None)
            group.add_argument(f"--{second}", dest=field, action="store_false")
        parser.add_argument("--if-version", type=int, metavar="N", help="Write only if the thread is at version N.")

    def handle(self, *args, thread_id, org, if_version, **options):
        patch = {}
        for field, set_flag, unset_flag in (("metadata", "set", "unset"), ("variables", "var", "unset_var")):
            changes = {**pairs(options[set_flag], f"--{set_flag}"), **dict.fromkeys(options[unset_flag])}
            if changes:
                patch[field] = changes
        for name, value in (
            ("title", options["title"]),
            ("addTags", options["tag"]),
            ("removeTags", options["untag"]),
            ("isArchived", options["isArchived"]),
            ("visibleInUi", options["visibleInUi"]),
        ):
            if value not in (None, []):
                patch[name] = value
        thread = find_thread(thread_id, org)
        try:
            thread = thread_update(
                org=thread.organization,
                thread_id=thread.pk,
                patch=patch,
                actor=Actor.command("update_thread"),
                if_match=if_version,
            )
        except ThreadError as error:
            if error.param == "If-Match":
                error.param = "--if-version"
            raise command_error(error) from None
        self.stdout.write(json.dumps(ThreadSerializer(thread).data, indent=2, ensure_ascii=False))
