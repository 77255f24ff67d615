"""abort_request ID: ask the service to abort a request (the workers cancel outside work)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from requests_app.errors import ApplicationError
from requests_app.models import Request
from requests_app.services.requests import request_abort


class Command(BaseCommand):
    help = "Abort a request: it goes to ToCancel now and Cancelled once its outside work is cancelled."

    def add_arguments(self, parser) -> None:
        parser.add_argument("request_id", type=int)

    def handle(self, *args, **options) -> str:
        request = Request.objects.filter(pk=options["request_id"]).first()
        if request is None:
            raise CommandError(f"no request {options['request_id']}")
        try:
            request = request_abort(request=request, actor="abort_request command")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        return f"request {request.pk}: {request.get_status_display()}"
