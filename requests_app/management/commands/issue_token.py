"""issue_token USERNAME: create the user if needed and print an API token (last line)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create USERNAME if missing and print its API token as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--staff", action="store_true", help="make the user staff (may change any request)")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token with a new one")

    def handle(self, *args, **options) -> str:
        user, created = get_user_model().objects.get_or_create(username=options["username"])
        if created:
            user.set_unusable_password()
        if options["staff"] and not user.is_staff:
            user.is_staff = True
        user.save()
        if options["rotate"]:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        if created:
            self.stderr.write(f"created user {user.username}")
        return token.key
