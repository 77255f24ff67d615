"""request_status ID: the request, its transforms, processings and collections as a table."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table

from requests_app.models import Collection, Processing, Request, Transform


class Command(BaseCommand):
    help = "Show a request with its transforms, processings and collections."

    def add_arguments(self, parser) -> None:
        parser.add_argument("request_id", type=int)

    def handle(self, *args, **options) -> None:
        request = Request.objects.filter(pk=options["request_id"]).first()
        if request is None:
            raise CommandError(f"no request {options['request_id']}")
        console = Console(file=self.stdout, width=140)
        head = Table(title=f"Request {request.pk}", show_header=False)
        for label, value in [
            ("type", request.get_request_type_display()),
            ("status", request.get_status_display()),
            ("scope:name", f"{request.scope}:{request.name}"),
            ("requester", request.requester),
            ("workload_id", str(request.workload_id)),
            ("created / updated", f"{request.created_at:%Y-%m-%d %H:%M:%S} / {request.updated_at:%Y-%m-%d %H:%M:%S}"),
            ("errors", str(request.errors or "")),
        ]:
            head.add_row(label, value)
        console.print(head)
        transforms = Table(title="Transforms")
        for column in ("id", "status", "retries", "updated"):
            transforms.add_column(column)
        for t in Transform.objects.filter(request=request):
            transforms.add_row(str(t.pk), t.get_status_display(), str(t.retries), f"{t.updated_at:%H:%M:%S}")
        console.print(transforms)
        processings = Table(title="Processings")
        for column in ("id", "transform", "status", "external id", "polls", "retries", "last error"):
            processings.add_column(column)
        for p in Processing.objects.filter(request=request):
            last = (p.errors or [{}])[-1].get("error", "") if p.errors else ""
            processings.add_row(
                str(p.pk),
                str(p.transform_id),
                p.get_status_display(),
                p.external_id,
                str(p.poll_count),
                str(p.retries),
                last[:60],
            )
        console.print(processings)
        collections = Table(title="Collections")
        for column in ("id", "relation", "scope:name", "status", "files", "processed", "failed", "bytes"):
            collections.add_column(column)
        for c in Collection.objects.filter(request=request):
            collections.add_row(
                str(c.pk),
                c.get_relation_type_display(),
                f"{c.scope}:{c.name}",
                c.get_status_display(),
                str(c.total_files),
                str(c.processed_files),
                str(c.failed_files),
                f"{c.bytes:,}",
            )
        console.print(collections)
