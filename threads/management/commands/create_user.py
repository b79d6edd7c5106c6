import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from threads.models import Membership

from ._common import OperatorCommand, get_org


class Command(OperatorCommand):
    help = (
        "Create a user who is a member (or viewer) of an organization. A password given with "
        "--password must pass the project's password validators (AUTH_PASSWORD_VALIDATORS: "
        "length, similarity to the username, common and all-digit passwords)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--password", help="Default: a random one, printed.")
        parser.add_argument("--role", choices=["member", "viewer"], default="member")
        parser.add_argument("--superuser", action="store_true", help="May also use the admin.")
        parser.add_argument(
            "--skip-password-validation",
            action="store_true",
            help="Accept a password the validators refuse (for tests and throwaway setups).",
        )

    def handle(self, *args, username, org, password, role, superuser, skip_password_validation, **options):
        organization = get_org(org)
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"User '{username}' already exists.")
        generated = password is None
        if not generated and not skip_password_validation:
            try:
                validate_password(password, user=User(username=username))
            except ValidationError as error:
                raise CommandError(f"The password was refused: {' '.join(error.messages)}") from None
        password = password or secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, password=password, is_staff=superuser, is_superuser=superuser
            )
            Membership.objects.create(user=user, organization=organization, role=role)
        self.stdout.write(f"Created user '{username}' ({role}) in '{organization.slug}'.")
        if generated:
            self.stdout.write(f"Password: {password}")
