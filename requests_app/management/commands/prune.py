"""prune: delete old delivered messages and long-finished requests (with --dry-run)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from requests_app.models import Message, Request
from requests_app.models.statuses import REQUEST_TERMINAL, MessageStatus

# Rows deleted per statement: keeps each DELETE short so it does not block the agents. A request
# cascades to its transforms, collections and (fast-deleted, one statement) contents, so its
# batch is much smaller than the messages' one.
MESSAGE_BATCH = 5000
REQUEST_BATCH = 20


class Command(BaseCommand):
    help = "Delete delivered messages older than --message-days and requests ended more than --request-days ago."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--message-days", type=float, default=30.0)
        parser.add_argument("--request-days", type=float, default=180.0)
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args, **options) -> str:
        now = timezone.now()
        messages = Message.objects.filter(
            status=MessageStatus.DELIVERED, delivered_at__lt=now - timedelta(days=options["message_days"])
        )
        requests = Request.objects.filter(
            status__in=REQUEST_TERMINAL, updated_at__lt=now - timedelta(days=options["request_days"])
        )
        if options["dry_run"]:
            return f"would delete {messages.count()} message(s) and {requests.count()} request(s)"
        deleted_messages = _delete_in_batches(messages, MESSAGE_BATCH)
        deleted_requests = _delete_in_batches(requests, REQUEST_BATCH)
        return f"deleted {deleted_messages} message(s) and {deleted_requests} request(s)"


def _delete_in_batches(queryset, batch: int) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)
