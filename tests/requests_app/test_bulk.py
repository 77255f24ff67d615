"""Bulk inserts: COPY on PostgreSQL keeps JSON, NULLs and awkward text intact."""

from __future__ import annotations

import pytest
from django.utils import timezone

from requests_app.models import Content
from requests_app.services.bulk import insert_rows
from requests_app.services.contents import CONTENT_COLUMNS
from tests.factories import CollectionFactory

pytestmark = pytest.mark.django_db


def test_copied_rows_read_back_exactly_as_given():
    collection = CollectionFactory()
    now = timezone.now()
    details = {"parameters": {"lr": 0.01, "name": "tab\there"}, "list": [1, None]}

    insert_rows(
        Content,
        CONTENT_COLUMNS,
        [(collection.pk, "s", "back\\slash\nnewline", 0, 0, 7, "", None, details, 0, now, now, now)],
    )

    content = Content.objects.get(collection=collection)
    assert content.name == "back\\slash\nnewline"
    assert content.details == details
    assert content.path is None
    assert content.status_changed_at == now
