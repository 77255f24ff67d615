"""Bulk inserts: COPY on PostgreSQL keeps JSON, NULLs and awkward text intact."""

from __future__ import annotations

import json

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
        [
            ("s", "back\\slash\nnewline", 0, 0, 7, "", None, details),
            ("s\ttab", "plain", 0, 2, 2**40, "0a1b2c3d", "/disk/plain", {}),
        ],
        constants={
            "collection_id": collection.pk,
            "retries": 0,
            "status_changed_at": now,
            "created_at": now,
            "updated_at": now,
        },
    )

    awkward, plain = Content.objects.filter(collection=collection).order_by("id")
    assert awkward.name == "back\\slash\nnewline"
    assert awkward.details == details
    assert awkward.path is None
    assert awkward.status_changed_at == now
    assert (plain.scope, plain.status, plain.bytes) == ("s\ttab", 2, 2**40)
    assert (plain.adler32, plain.path) == ("0a1b2c3d", "/disk/plain")
    assert plain.details == {}
    assert plain.created_at == now


def test_a_text_array_literal_reads_back_as_the_same_strings():
    from django.db import connection

    from requests_app.services.bulk import text_array

    values = ["plain", 'quo"te', "back\\slash", "a,b", "{braces}", " spaced ", "", "NULL", "tab\there", "ünï"]

    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [text_array(values)])
        assert cursor.fetchone()[0] == values


def test_message_bodies_round_trip_through_the_fast_json_field():
    from requests_app.models import Message
    from tests.factories import MessageFactory

    body = {"files": [{"name": "a\tb", "path": None, "status": "Available"}], "output": {"1": [0.5, "ünï"]}}
    message = MessageFactory(body=body)

    assert Message.objects.get(pk=message.pk).body == body


def test_json_text_falls_back_for_what_orjson_refuses():
    from requests_app.models.fields import json_text

    assert json.loads(json_text({1: "integer key"})) == {"1": "integer key"}
    assert json_text({"nan": float("nan")}) == '{"nan":null}'


def test_copy_encodes_choices_as_their_numbers_and_unknown_types_as_text():
    from decimal import Decimal
    from uuid import UUID

    from requests_app.models.statuses import ContentStatus
    from requests_app.services.bulk import _copy_value

    assert _copy_value(ContentStatus.AVAILABLE) == "2"
    assert _copy_value(ContentStatus.NEW) == "0"
    assert _copy_value(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert _copy_value(Decimal("1.5")) == "1.5"
    assert _copy_value(True) == "t"
