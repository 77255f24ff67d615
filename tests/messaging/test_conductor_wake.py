"""New messages wake the conductor at most twice per window: at once, and once just after the window.

A stream of HPO reports writes one message each; a conductor run per message cost every report a lease query
and a task send (``requests_app.handoffs.messages_written``). These read what really reaches the Redis broker,
and, with a real worker, that every message of a window is delivered without beat's help.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from idds_site.celery import app as celery_app
from requests_app.handoffs import WAKE_MARGIN, TaskName
from requests_app.models import Message, Request
from requests_app.models.leases import CONDUCTOR_LEASE, AgentLease
from requests_app.models.statuses import MessageStatus, RequestStatus, RequestType
from requests_app.services.messages import messages_write, new_msg_id
from tests.broker import purge_queues, queued_headers
from tests.conftest import wait_for


def queued_deliveries() -> list[str | None]:
    """The ETA of every conductor task waiting on the broker (None: run at once), oldest first."""
    headers = queued_headers("conductor")
    assert {h["task"] for h in headers} <= {TaskName.MESSAGES_DELIVER}
    return [h["eta"] for h in headers]


def write_one(request: Request) -> None:
    with transaction.atomic():
        messages_write([Message(msg_id=new_msg_id(), msg_type="wake_test", request=request, body={"n": 1})])


@pytest.fixture
def a_request(transactional_db) -> Iterator[Request]:
    cache.clear()
    yield Request.objects.create(request_type=RequestType.OTHER, status=RequestStatus.NEW, owner=None)
    cache.clear()


@pytest.fixture
def conductor_queue_kept(a_request) -> Iterator[None]:
    """The test worker (if this session started it) stops taking the conductor's queue, which starts empty."""
    celery_app.control.cancel_consumer("conductor", reply=True, timeout=2)
    purge_queues()
    yield
    purge_queues()
    celery_app.control.add_consumer("conductor", reply=True, timeout=2)


def test_a_stream_of_messages_sends_one_wake_at_once_and_one_after_the_window(
    conductor_queue_kept, a_request, settings
):
    settings.IDDS_CONDUCTOR_WAKE_SECONDS = 30  # longer than the test: every write lands in one window
    before = timezone.now()

    for _ in range(5):
        write_one(a_request)

    leading, trailing = queued_deliveries()
    assert leading is None
    delay = (datetime.fromisoformat(trailing) - before).total_seconds()
    assert 30 + WAKE_MARGIN <= delay < 30 + WAKE_MARGIN + 5


def test_a_conductor_holding_its_lease_takes_the_first_message_and_the_window_still_schedules_one(
    conductor_queue_kept, a_request, settings
):
    settings.IDDS_CONDUCTOR_WAKE_SECONDS = 30
    assert AgentLease.acquire(CONDUCTOR_LEASE, "running-elsewhere:1", 60)

    write_one(a_request)
    assert queued_deliveries() == []  # the running conductor reads the outbox once more before it lets go
    write_one(a_request)
    write_one(a_request)

    assert len(queued_deliveries()) == 1
    assert queued_deliveries()[0] is not None


def test_with_no_window_every_write_wakes_the_conductor(conductor_queue_kept, a_request, settings):
    settings.IDDS_CONDUCTOR_WAKE_SECONDS = 0

    for _ in range(3):
        write_one(a_request)

    assert queued_deliveries() == [None, None, None]


def test_every_message_of_a_window_is_delivered_by_a_real_worker_without_beat(celery_worker, a_request, settings):
    settings.IDDS_CONDUCTOR_WAKE_SECONDS = 0.5
    started = timezone.now()

    for _ in range(20):
        write_one(a_request)

    def all_delivered() -> bool:
        return not Message.objects.filter(request=a_request).exclude(status=MessageStatus.DELIVERED).exists()

    wait_for(all_delivered, timeout=30, what="every message delivered by the wake-ups alone")
    assert Message.objects.filter(request=a_request, status=MessageStatus.DELIVERED).count() == 20
    last = Message.objects.filter(request=a_request).order_by("-delivered_at").first()
    assert last.delivered_at - started < timedelta(seconds=10)
