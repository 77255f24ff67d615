"""Read endpoints of transforms, processings, collections, contents and messages."""

from __future__ import annotations

import pytest

from requests_app.models.statuses import ContentStatus, MessageStatus
from tests.factories import CollectionFactory, ContentFactory, MessageFactory, ProcessingFactory

pytestmark = pytest.mark.django_db


def test_contents_filter_by_collection_and_status(api):
    collection = CollectionFactory()
    ContentFactory.create_batch(3, collection=collection, status=ContentStatus.AVAILABLE)
    ContentFactory.create_batch(2, collection=collection)
    ContentFactory(status=ContentStatus.AVAILABLE)

    response = api.get("/api/v1/contents/", {"collection": collection.pk, "status": "Available"})

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    assert {r["status"] for r in results} == {"Available"}


def test_messages_after_a_cursor_come_in_outbox_order(api):
    messages = MessageFactory.create_batch(4)
    MessageFactory(status=MessageStatus.DELIVERED)

    response = api.get("/api/v1/messages/", {"after": messages[1].pk})

    ids = [m["msg_pk"] for m in response.json()["results"]]
    assert ids[:2] == [messages[2].pk, messages[3].pk]
    assert ids == sorted(ids)


def test_transforms_processings_and_collections_are_listed_with_names_for_statuses(api):
    processing = ProcessingFactory()
    collection = CollectionFactory(transform=processing.transform, request=processing.request)

    transforms = api.get("/api/v1/transforms/", {"request": processing.request_id}).json()["results"]
    processings = api.get("/api/v1/processings/", {"transform": processing.transform_id}).json()["results"]
    collections = api.get("/api/v1/collections/", {"relation_type": "Output"}).json()["results"]

    assert [t["transform_id"] for t in transforms] == [processing.transform_id]
    assert processings[0]["status"] == "New"
    assert [c["coll_id"] for c in collections] == [collection.pk]
