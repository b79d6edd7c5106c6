from django.core.management.base import CommandError
from django.utils.text import slugify

from threads.models import Organization

from ._common import OperatorCommand


class Command(OperatorCommand):
    help = "Create an organization and print its id."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", help="Display name (default: the slug).")

    def handle(self, *args, slug, name, **options):
        if slugify(slug) != slug:
            raise CommandError(f"'{slug}' is not a valid slug (lower-case letters, digits, - and _).")
        if Organization.objects.filter(slug=slug).exists():
            raise CommandError(f"Organization '{slug}' already exists.")
        org = Organization.objects.create(slug=slug, name=name or slug)
        self.stdout.write(str(org.pk))
