"""map_dn DN USERNAME: let a certificate's subject DN act as USERNAME on /idds/ (x509_proxy auth)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from requests_app.errors import ApplicationError
from requests_app.services.identities import x509_identity_map, x509_identity_unmap


class Command(BaseCommand):
    help = (
        "Map an X.509 subject DN (slash or RFC 2253 form; proxy suffixes ignored) to USERNAME, creating the "
        "user if needed; --remove deletes the mapping instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("dn")
        parser.add_argument("username", nargs="?", default=None)
        parser.add_argument("--remove", action="store_true", help="remove the mapping of DN")

    def handle(self, *args, **options) -> str:
        if options["remove"]:
            removed = x509_identity_unmap(dn=options["dn"])
            return f"removed {removed} mapping(s)"
        if not options["username"]:
            raise CommandError("USERNAME is required (or give --remove)")
        user, created = get_user_model().objects.get_or_create(username=options["username"])
        if created:
            # Certificate users never log in with a password.
            user.set_unusable_password()
            user.save()
        try:
            identity = x509_identity_map(dn=options["dn"], user=user)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        return f"{identity.dn} -> {user.username}"
