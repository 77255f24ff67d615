"""Reads of the core for the API and the pages (writes live in ``requests_app.services``).

Each selector returns a QuerySet with what its readers always need joined in, so list views stay at
a fixed number of queries whatever the page size.
"""

from __future__ import annotations

from django.db.models import QuerySet

from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform


def request_list(*, user) -> QuerySet[Request]:
    """Requests ``user`` may see (every authenticated user reads every request), with their owner."""
    return Request.objects.visible_to(user).select_related("owner")


def request_events(*, request: Request) -> QuerySet[Event]:
    """The status history of a request and of everything under it, oldest first."""
    return request.events.all()


def transform_list() -> QuerySet[Transform]:
    return Transform.objects.all()


def processing_list() -> QuerySet[Processing]:
    return Processing.objects.all()


def collection_list() -> QuerySet[Collection]:
    return Collection.objects.all()


def content_list() -> QuerySet[Content]:
    """Contents: a campaign has millions, so callers always filter and page (by id)."""
    return Content.objects.all()


def message_list() -> QuerySet[Message]:
    """The outbox in id order, which is the order consumers pull it in."""
    return Message.objects.all()
