"""issue_token USERNAME: create the user if needed and print a NEW API token (the last line, shown only now)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from requests_app.auth.tokens import token_issue
from requests_app.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Create USERNAME if missing and print a new API token as the last line. Only a hash is stored: "
        "the key cannot be shown again (issue another, and revoke the old one with revoke_token)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--staff", action="store_true", help="make the user staff (may change any request)")
        parser.add_argument("--name", default="", help="what the token is for (shown in lists and the admin)")
        parser.add_argument("--expires-days", type=int, default=None, help="the token stops working after N days")

    def handle(self, *args, **options) -> str:
        user, created = get_user_model().objects.get_or_create(username=options["username"])
        if created:
            # Token users never log in with a password.
            user.set_unusable_password()
        if options["staff"] and not user.is_staff:
            user.is_staff = True
        user.save()
        try:
            issued = token_issue(user=user, name=options["name"], expires_days=options["expires_days"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if created:
            self.stderr.write(f"created user {user.username}")
        self.stderr.write(f"token {issued.token.pk} ({issued.token.prefix}…): keep the key, it is not stored")
        return issued.key
