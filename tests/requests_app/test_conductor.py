"""The conductor: batches, confirmation by every sink, back-off in order, Failed after N tries."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from requests_app.models import AgentLease, Message
from requests_app.models.leases import CONDUCTOR_LEASE
from requests_app.models.statuses import MessageStatus
from requests_app.services import conductor
from requests_app.services.messages import messages_write
from requests_app.sinks.base import OutgoingMessage, SendReport, Sink
from tests.broker import purge_queues, queued_tasks
from tests.factories import MessageFactory, TransformFactory

pytestmark = pytest.mark.django_db


class RecordingSink(Sink):
    """A sink that refuses the msg_ids in ``refuse`` (``poison`` for good) and records the rest."""

    name = "recording"
    sent: list[str] = []
    refuse: set[str] = set()
    poison: set[str] = set()

    def send(self, messages: Sequence[OutgoingMessage]) -> SendReport:
        report = SendReport()
        for message in messages:
            if message.msg_id in self.refuse | self.poison:
                report.failed[message.msg_id] = "broker said no"
                if message.msg_id in self.poison:
                    report.permanent.add(message.msg_id)
            else:
                type(self).sent.append(message.msg_id)
                report.delivered.add(message.msg_id)
        return report


@pytest.fixture
def sinks(settings):
    settings.IDDS_SINK_CLASSES = {**settings.IDDS_SINK_CLASSES, "recording": f"{__name__}.RecordingSink"}
    settings.IDDS_MESSAGE_SINKS = ["db", "recording"]
    RecordingSink.sent, RecordingSink.refuse, RecordingSink.poison = [], set(), set()
    conductor.configured_sinks.cache_clear()
    yield RecordingSink
    conductor.configured_sinks.cache_clear()


def test_it_delivers_in_outbox_order_and_marks_rows_delivered(sinks):
    messages = MessageFactory.create_batch(5)

    assert conductor.messages_deliver(batch_size=2) == 5

    assert sinks.sent == [m.msg_id for m in messages]
    for message in Message.objects.all():
        assert message.status == MessageStatus.DELIVERED
        assert message.delivered_to == ["db", "recording"]
        assert message.delivered_at is not None


def test_a_refused_message_backs_off_and_holds_back_later_messages_of_its_transform(sinks):
    # given: transform A's first message is refused; transform B is fine
    transform_a, transform_b = TransformFactory(), TransformFactory()
    a1 = MessageFactory(transform=transform_a, request=transform_a.request)
    a2 = MessageFactory(transform=transform_a, request=transform_a.request)
    b1 = MessageFactory(transform=transform_b, request=transform_b.request)
    sinks.refuse = {a1.msg_id}

    # when
    conductor.messages_deliver()

    # then
    a1.refresh_from_db()
    a2.refresh_from_db()
    assert Message.objects.get(pk=b1.pk).status == MessageStatus.DELIVERED
    assert (a1.status, a1.attempts, a1.last_error) == (MessageStatus.NEW, 1, "recording: broker said no")
    assert a2.status == MessageStatus.NEW
    assert a2.next_attempt_at >= a1.next_attempt_at

    # when the broker accepts again and the back-off is over
    sinks.refuse = set()
    Message.objects.update(next_attempt_at=None)
    conductor.messages_deliver()

    # then a1 goes before a2
    assert sinks.sent[-2:] == [a1.msg_id, a2.msg_id]


def test_a_message_refused_for_good_or_too_often_ends_failed_with_its_reason(sinks, settings):
    settings.IDDS_MESSAGE_MAX_ATTEMPTS = 2
    poison, stubborn = MessageFactory(), MessageFactory()
    sinks.poison, sinks.refuse = {poison.msg_id}, {stubborn.msg_id}

    conductor.messages_deliver()
    Message.objects.update(next_attempt_at=None)
    conductor.messages_deliver()

    poison.refresh_from_db()
    stubborn.refresh_from_db()
    assert (poison.status, poison.attempts) == (MessageStatus.FAILED, 1)
    assert (stubborn.status, stubborn.attempts) == (MessageStatus.FAILED, 2)
    assert "broker said no" in stubborn.last_error


def test_a_sink_that_raises_loses_nothing(sinks, monkeypatch):
    message = MessageFactory()

    def explode(self, batch):
        raise RuntimeError("connection reset")

    monkeypatch.setattr(RecordingSink, "send", explode)
    conductor.messages_deliver()

    message.refresh_from_db()
    assert message.status == MessageStatus.NEW
    assert "connection reset" in message.last_error
    # an outage is not the message's fault: no attempt is used up, it just waits a little
    assert message.attempts == 0
    assert message.next_attempt_at is not None


def test_only_one_conductor_delivers_at_a_time(sinks):
    from requests_app.models import AgentLease

    MessageFactory()
    assert AgentLease.acquire("conductor", "other-host:1", 60)

    assert conductor.messages_deliver() == 0
    assert Message.objects.get().status == MessageStatus.NEW


def conductor_runs_requested_by_new_messages(django_capture_on_commit_callbacks) -> int:
    """Write a message as a service does, commit, and count the conductor runs put on the broker."""
    purge_queues()
    with django_capture_on_commit_callbacks(execute=True):
        messages_write([MessageFactory.build(transform=TransformFactory())])
    return len(queued_tasks("conductor"))


def test_new_messages_wake_the_conductor_only_when_none_is_running(sinks, django_capture_on_commit_callbacks, settings):
    # Every write starts a wake window (tests/messaging/test_conductor_wake.py covers the window itself).
    settings.IDDS_CONDUCTOR_WAKE_SECONDS = 0
    # given: no conductor running / then a run is requested
    assert conductor_runs_requested_by_new_messages(django_capture_on_commit_callbacks) == 1

    # given: a conductor holding its lease (it re-reads the outbox before letting go) / then none is
    assert AgentLease.acquire(CONDUCTOR_LEASE, "other-host:1", 60)
    assert conductor_runs_requested_by_new_messages(django_capture_on_commit_callbacks) == 0

    # when it lets go, or its lease expires / then runs are requested again
    AgentLease.release(CONDUCTOR_LEASE, "other-host:1")
    assert conductor_runs_requested_by_new_messages(django_capture_on_commit_callbacks) == 1
    assert AgentLease.acquire(CONDUCTOR_LEASE, "dead-host:1", -1)
    assert conductor_runs_requested_by_new_messages(django_capture_on_commit_callbacks) == 1
