"""requeue_messages: give Failed outbox messages another round of delivery attempts."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from requests_app.models import Message
from requests_app.services.conductor import messages_requeue


class Command(BaseCommand):
    help = "Re-queue Failed messages (all, or those of --request / --ids)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--request", type=int, help="only this request's messages")
        parser.add_argument("--ids", type=int, nargs="*", help="only these message row ids")

    def handle(self, *args, **options) -> str:
        queryset = Message.objects.all()
        if options["request"]:
            queryset = queryset.filter(request_id=options["request"])
        if options["ids"]:
            queryset = queryset.filter(pk__in=options["ids"])
        return f"re-queued {messages_requeue(queryset=queryset)} message(s)"
