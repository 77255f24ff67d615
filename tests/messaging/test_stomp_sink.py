"""The STOMP sink against a real ActiveMQ, with the reference consumer on the other side."""

from __future__ import annotations

import pytest

from requests_app.errors import TransientError
from requests_app.sinks.stomp import MSG_ID_HEADER, StompSink, message_headers, parse_hosts
from tests.messaging.conftest import file_message, free_port, send_across_a_restart
from tools.brokers import STOMP_MAX_FRAME_BYTES


def make_sink(port: int, destination: str, **kwargs) -> StompSink:
    return StompSink(hosts=[f"127.0.0.1:{port}"], destination=destination, user="", password="", **kwargs)


def test_it_delivers_a_batch_and_the_consumer_receives_every_message(
    running_activemq, destination, stomp_consumer, make_messages
):
    # given
    consumer = stomp_consumer()
    messages = make_messages(250, files=20)
    sink = make_sink(running_activemq.port, destination, window=100)

    # when
    report = sink.send(messages)

    # then
    assert report.delivered == {m.msg_id for m in messages}
    assert report.failed == {}
    consumer.wait_for_messages(250)
    summary = consumer.stop()
    assert consumer.recorded_ids() == [m.msg_id for m in messages]  # all of them, in order
    assert summary["files_by_workload"] == {"777": 250 * 20}
    sink.close()


def test_it_marks_each_message_with_persistence_type_and_its_id():
    # given
    message = file_message(1)

    # when
    headers = message_headers(message)

    # then
    assert headers["persistent"] == "true"
    assert headers["msg_type"] == "file_stagein"
    assert headers[MSG_ID_HEADER] == headers["msg_id"] == message.msg_id
    assert headers["workload_id"] == "777"


def test_it_fails_over_to_the_next_broker_when_the_first_is_down(running_activemq, destination, make_messages):
    # given: the first host refuses connections
    sink = StompSink(
        hosts=[f"127.0.0.1:{free_port()}", running_activemq.host_and_port],
        destination=destination,
        user="",
        password="",
    )

    # when
    report = sink.send(make_messages(5))

    # then
    assert len(report.delivered) == 5
    sink.close()


def test_it_raises_a_transient_error_and_backs_off_when_no_broker_answers(destination, make_messages):
    # given
    sink = make_sink(free_port(), destination, backoff_initial=60)

    # when / then: the first call tries and fails, the second does not even try
    with pytest.raises(TransientError, match="no STOMP broker reachable"):
        sink.send(make_messages(2))
    with pytest.raises(TransientError, match="next attempt in"):
        sink.send(make_messages(2))


def test_it_blames_only_the_message_the_broker_refused(running_activemq, destination, stomp_consumer):
    # given: a frame larger than the broker accepts between two good ones
    consumer = stomp_consumer()
    good, poison, after = file_message(1), file_message(2, pad=STOMP_MAX_FRAME_BYTES + 1024), file_message(3)
    sink = make_sink(running_activemq.port, destination)

    # when
    first = sink.send([good, poison, after])
    second = sink.send([after])

    # then: the one before is confirmed, the poison is refused with the broker's reason,
    # the one after carries no blame and goes through on the next call
    assert first.delivered == {good.msg_id}
    assert set(first.failed) == {poison.msg_id}
    assert "maximum" in first.failed[poison.msg_id]
    assert second.delivered == {after.msg_id}
    consumer.wait_for_messages(2)
    assert consumer.recorded_ids() == [good.msg_id, after.msg_id]
    sink.close()


def test_nothing_is_lost_when_the_broker_stops_mid_way_and_comes_back(
    running_activemq, destination, stomp_consumer, make_messages
):
    # given: a consumer with a durable subscription and a sender that retries until confirmed
    consumer = stomp_consumer()
    messages = make_messages(600, files=50)
    sink = make_sink(running_activemq.port, destination, window=50, backoff_initial=0.2, backoff_max=1.0)

    # when the server goes down in the middle of the stream and comes back / then nothing is lost
    send_across_a_restart(sink, messages, running_activemq, consumer)


def test_it_works_with_rabbitmq_stomp_too(destination, make_messages):
    # given: RabbitMQ's STOMP plugin on its own port (RabbitMQ itself runs on this machine)
    from tools.brokers import DEFAULT_RABBITMQ_STOMP_PORT, ensure_rabbitmq_stomp
    from tools.consumer import Recorder, StompSource, consume

    ensure_rabbitmq_stomp()
    source = StompSource([("127.0.0.1", DEFAULT_RABBITMQ_STOMP_PORT)], destination, user="guest", password="guest")
    recorder = Recorder()
    sink = StompSink(
        hosts=[f"127.0.0.1:{DEFAULT_RABBITMQ_STOMP_PORT}"], destination=destination, user="guest", password="guest"
    )
    messages = make_messages(40)

    # when
    report = sink.send(messages)
    summary = consume(source, recorder, count=40, idle=30)

    # then
    assert report.delivered == {m.msg_id for m in messages}
    assert summary["messages"] == 40
    assert recorder.seen == {m.msg_id for m in messages}
    source.close()
    sink.close()


@pytest.mark.parametrize("bad", ["", "brokerhost", "host:port", ":61613"])
def test_it_rejects_a_broker_address_that_is_not_host_and_port(bad):
    # when / then
    with pytest.raises(ValueError, match="IDDS_STOMP_HOSTS"):
        parse_hosts([bad])


def test_it_sends_the_original_headers_and_each_can_be_configured(settings):
    # given: the defaults, as the original sends them
    message = file_message(2)

    # when / then
    headers = message_headers(message)
    assert (headers["ttl"], headers["vo"], headers["from_idds"], headers["msg_type"]) == (
        "43200000",
        "atlas",
        "true",
        "file_stagein",
    )

    # when: a site without them
    settings.IDDS_STOMP_TTL_MS = 0
    settings.IDDS_STOMP_VO = ""
    settings.IDDS_STOMP_FROM_IDDS = False
    settings.IDDS_STOMP_MSG_TYPE_HEADER = False

    # then
    assert not {"ttl", "vo", "from_idds", "msg_type"} & set(message_headers(message))
