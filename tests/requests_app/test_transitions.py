"""The transition tables and the one place that enforces them."""

from __future__ import annotations

import pytest

from requests_app.errors import IllegalTransition
from requests_app.models import Collection, Content, Event, Message, Request
from requests_app.models.statuses import (
    COLLECTION_TRANSITIONS,
    CONTENT_TRANSITIONS,
    MESSAGE_TRANSITIONS,
    PROCESSING_TRANSITIONS,
    REQUEST_TRANSITIONS,
    CollectionStatus,
    ContentStatus,
    ProcessingStatus,
    RequestStatus,
)
from requests_app.services.contents import contents_apply_updates
from requests_app.services.transitions import sources_for, transition
from requests_app.worktypes.base import ContentUpdate
from requests_app.worktypes.registry import get_work_type
from tests.factories import CollectionFactory, ContentFactory, ProcessingFactory, RequestFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("table", "enum"),
    [
        (REQUEST_TRANSITIONS, RequestStatus),
        (PROCESSING_TRANSITIONS, ProcessingStatus),
        (COLLECTION_TRANSITIONS, CollectionStatus),
        (CONTENT_TRANSITIONS, ContentStatus),
    ],
)
def test_every_status_has_a_row_in_its_table_and_targets_are_known(table, enum):
    assert set(table) == set(enum.values)
    for targets in table.values():
        assert targets <= set(enum.values)


def test_message_statuses_all_have_rows():
    assert set(MESSAGE_TRANSITIONS) == {0, 1, 2, 3}


def test_it_moves_a_request_and_records_an_event():
    # given
    request = RequestFactory()

    # when
    changed = transition(request, RequestStatus.TRANSFORMING, reason="go", actor="test")

    # then
    assert changed is True
    assert Request.objects.get(pk=request.pk).status == RequestStatus.TRANSFORMING
    event = Event.objects.get(entity="request", entity_id=request.pk)
    assert (event.old_status, event.new_status, event.reason) == (RequestStatus.NEW, RequestStatus.TRANSFORMING, "go")


def test_it_refuses_to_move_a_finished_request_back_to_transforming():
    request = RequestFactory(status=RequestStatus.FINISHED)

    with pytest.raises(IllegalTransition, match="from Finished to Transforming"):
        transition(request, RequestStatus.TRANSFORMING)

    assert Request.objects.get(pk=request.pk).status == RequestStatus.FINISHED
    assert not Event.objects.exists()


def test_repeating_a_transition_is_a_no_op():
    request = RequestFactory(status=RequestStatus.CANCELLED)

    assert transition(request, RequestStatus.CANCELLED) is False
    assert not Event.objects.exists()


def test_a_stale_object_is_rechecked_against_the_current_status():
    # given: two copies of one row; the first moves it to Finished
    request = RequestFactory(status=RequestStatus.TRANSFORMING)
    stale = Request.objects.get(pk=request.pk)
    transition(request, RequestStatus.FINISHED)

    # when / then: the stale copy's move is judged from Finished, not from Transforming
    with pytest.raises(IllegalTransition, match="from Finished"):
        transition(stale, RequestStatus.FAILED)


def test_it_refuses_an_illegal_processing_move():
    processing = ProcessingFactory(status=ProcessingStatus.FINISHED)

    with pytest.raises(IllegalTransition):
        transition(processing, ProcessingStatus.RUNNING)


def test_bulk_content_moves_skip_contents_the_table_forbids_and_keep_counters_right():
    # given: three files, one already Available
    collection = CollectionFactory(total_files=3, processed_files=1, bytes=300, processed_bytes=100)
    done = ContentFactory(collection=collection, name="a", status=ContentStatus.AVAILABLE)
    ContentFactory(collection=collection, name="b")
    ContentFactory(collection=collection, name="c")
    work_type = get_work_type(99)

    # when: all three reported Available, "c" reported FinalFailed, then Available reported again
    changed = contents_apply_updates(
        transform=collection.transform,
        collections={collection.relation_type: collection},
        updates=[ContentUpdate(name=n, status=ContentStatus.AVAILABLE) for n in ("a", "b")]
        + [ContentUpdate(name="c", status=ContentStatus.FINAL_FAILED)],
        work_type=work_type,
    )
    again = contents_apply_updates(
        transform=collection.transform,
        collections={collection.relation_type: collection},
        updates=[ContentUpdate(name="a", status=ContentStatus.AVAILABLE)],
        work_type=work_type,
    )

    # then
    assert (changed, again) == (2, 0)
    collection.refresh_from_db()
    assert (collection.processed_files, collection.failed_files, collection.processed_bytes) == (2, 1, 200)
    assert Content.objects.get(pk=done.pk).status == ContentStatus.AVAILABLE
    assert ContentStatus.AVAILABLE not in sources_for(Content, ContentStatus.AVAILABLE)


def test_it_refuses_to_reopen_a_closed_collection():
    collection = CollectionFactory(status=CollectionStatus.CLOSED)

    with pytest.raises(IllegalTransition):
        transition(collection, CollectionStatus.OPEN)
    assert Collection.objects.get(pk=collection.pk).status == CollectionStatus.CLOSED


def test_bulk_content_moves_cover_every_chunk_and_announce_in_reported_order(monkeypatch):
    # given: more files than a chunk holds, with sizes smaller than a chunk (a regression: the
    # chunk size once shared its name with a file's size)
    from requests_app.services import contents

    monkeypatch.setattr(contents, "CHUNK", 7)
    collection = CollectionFactory(total_files=20, bytes=20 * 3)
    for index in range(20):
        ContentFactory(collection=collection, name=f"f{index:02d}", bytes=3)
    reported = [f"f{index:02d}" for index in reversed(range(20))]

    # when
    changed = contents_apply_updates(
        transform=collection.transform,
        collections={collection.relation_type: collection},
        updates=[ContentUpdate(name=name, status=ContentStatus.AVAILABLE) for name in reported],
        work_type=get_work_type(99),
    )

    # then
    assert changed == 20
    assert not Content.objects.filter(collection=collection).exclude(status=ContentStatus.AVAILABLE).exists()
    collection.refresh_from_db()
    assert (collection.processed_files, collection.processed_bytes) == (20, 60)
    messages = Message.objects.filter(collection=collection).order_by("id")
    announced = [entry["name"] for message in messages for entry in message.body["files"]]
    assert announced == reported
