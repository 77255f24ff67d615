"""issue_worker_token REQUEST_ID: print a worker token that can only work the points of that one study."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from requests_app.auth.service_user import command_owner
from requests_app.auth.tokens import token_issue
from requests_app.errors import ApplicationError
from requests_app.models import Request
from requests_app.models.statuses import RequestType


class Command(BaseCommand):
    help = (
        "Issue a study-scoped worker token for an HPO request and print it as the last line: it may check out, "
        "heartbeat, report, fail and release points of that study and read it, nothing else."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("request_id", type=int)
        parser.add_argument("--name", default="", help="what the token is for, e.g. the pilot's site")
        parser.add_argument("--expires-days", type=int, default=None, help="the token stops working after N days")

    def handle(self, *args, **options) -> str:
        study = Request.objects.select_related("owner").filter(pk=options["request_id"]).first()
        if study is None or study.request_type != RequestType.HYPER_PARAMETER_OPT:
            raise CommandError(f"no hyperparameter-optimisation request {options['request_id']}")
        # The token acts for the study's owner (leases record it); ownerless legacy rows get the service user.
        user = study.owner or command_owner(None)
        try:
            issued = token_issue(user=user, name=options["name"], expires_days=options["expires_days"], study=study)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"worker token {issued.token.pk} ({issued.token.prefix}…) for study {study.pk}")
        return issued.key
