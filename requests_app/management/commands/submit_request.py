"""submit_request FILE.json: submit a request as the native API would; prints its id."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from requests_app.api.serializers import RequestCreateSerializer
from requests_app.auth.service_user import command_owner
from requests_app.errors import ApplicationError
from requests_app.services.requests import request_create


class Command(BaseCommand):
    help = "Submit a request from a JSON file (the body of POST /api/v1/requests/); prints the request id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="JSON file, or - for standard input")
        parser.add_argument("--owner", default="", help="username owning the request (default: the service user)")

    def handle(self, *args, **options) -> str:
        source = options["file"]
        try:
            text = self.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{source}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        incoming = RequestCreateSerializer(data=data)
        if not incoming.is_valid():
            problems = "; ".join(f"{field}: {' '.join(map(str, errs))}" for field, errs in incoming.errors.items())
            raise CommandError(f"invalid request: {problems}")
        values = dict(incoming.validated_data)
        values.pop("status", None)
        owner = command_owner(options["owner"])
        try:
            request = request_create(
                request_type=values.pop("request_type"), metadata=values.pop("request_metadata"), owner=owner, **values
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        return str(request.pk)
