from threads.keys import api_key_create

from ._common import OperatorCommand, get_org


class Command(OperatorCommand):
    help = "Create an API key for an organization; the key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--name", default="default")
        parser.add_argument("--scope", choices=["read", "write"], default="write")

    def handle(self, *args, org, name, scope, **options):
        key, raw = api_key_create(org=get_org(org), name=name, scope=scope)
        self.stdout.write(f"Created {scope} key '{key.name}' ({key.prefix}…). It is shown only once:")
        self.stdout.write(raw)
