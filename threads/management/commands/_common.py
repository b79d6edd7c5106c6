"""Shared by the commands: look up an organization, fail with one clear line."""

from django.core.management.base import CommandError

from threads.models import Organization


def get_org(slug: str) -> Organization:
    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        raise CommandError(f"No organization '{slug}'.")
    return org
