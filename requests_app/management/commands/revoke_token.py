"""revoke_token: revoke API tokens by id, by display prefix, or all of a user's."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from requests_app.auth.tokens import token_revoke
from requests_app.models import ApiToken


class Command(BaseCommand):
    help = "Revoke tokens (they answer 401 from now on): by --id, by --prefix, or every token of --user."

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", type=int, help="the token's id (issue_token and the admin show it)")
        which.add_argument("--prefix", help="the token's display prefix, e.g. idds_AbCdEfGh")
        which.add_argument("--user", help="every active token of this username")

    def handle(self, *args, **options) -> str:
        tokens = ApiToken.objects.filter(revoked_at__isnull=True)
        if options["id"] is not None:
            tokens = tokens.filter(pk=options["id"])
        elif options["prefix"]:
            tokens = tokens.filter(prefix=options["prefix"])
        else:
            tokens = tokens.filter(user__username=options["user"])
        found = list(tokens)
        if options["prefix"] and len(found) > 1:
            raise CommandError(f"{len(found)} tokens share prefix {options['prefix']!r}; revoke by --id")
        if not found:
            raise CommandError("no active token matches")
        for token in found:
            token_revoke(token=token)
        return f"revoked {len(found)} token(s): " + ", ".join(f"{t.pk} ({t.prefix}…)" for t in found)
