"""Claims on processings: compare-and-swap with expiry, never a lock flag."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from requests_app.models import Processing


def worker_name() -> str:
    """Who holds a claim: host and pid, enough for an operator to find the process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_free() -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now())


def processing_claim(
    processing_id: int, *, statuses: Iterable[int], holder: str, seconds: int | None = None, extra: Q | None = None
) -> Processing | None:
    """Claim a processing in one of ``statuses`` whose previous claim is absent, expired or ``holder``'s own.

    Returns the fresh row, or None when another worker holds it or its status moved on.
    """
    until = timezone.now() + timedelta(seconds=seconds or settings.IDDS_CLAIM_SECONDS)
    # The holder's own claim counts as free: a task that Celery retries after a database error
    # (a PostgreSQL restart mid-commit) runs in the same process and must take its work up again,
    # not wait for its own claim to expire. One process runs one task at a time.
    condition = Q(pk=processing_id, status__in=list(statuses)) & (claim_free() | Q(claimed_by=holder))
    if extra is not None:
        condition &= extra
    if Processing.objects.filter(condition).update(claimed_by=holder, claimed_until=until) != 1:
        return None
    return Processing.objects.select_related("transform", "request").get(pk=processing_id)


def processing_release(processing: Processing, *, holder: str, **fields) -> None:
    """Give the claim back, writing ``fields`` in the same UPDATE (only if we still hold it)."""
    fields.setdefault("updated_at", timezone.now())
    Processing.objects.filter(pk=processing.pk, claimed_by=holder).update(claimed_by="", claimed_until=None, **fields)
