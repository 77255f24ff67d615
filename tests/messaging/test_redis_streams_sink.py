"""The Redis Streams sink against a real (private, restartable) redis-server and consumer group."""

from __future__ import annotations

import json

import pytest
import redis

from requests_app.errors import TransientError
from requests_app.sinks.redis_streams import RedisStreamSink
from tests.messaging.conftest import free_port, send_across_a_restart


def test_it_appends_a_batch_and_the_consumer_group_receives_every_message(
    running_redis, stream, stream_consumer, make_messages
):
    # given
    consumer = stream_consumer()
    messages = make_messages(300, files=10)
    sink = RedisStreamSink(url=running_redis.url, stream=stream, maxlen=10_000)

    # when
    report = sink.send(messages)

    # then
    assert report.delivered == {m.msg_id for m in messages}
    consumer.wait_for_messages(300)
    summary = consumer.stop()
    assert consumer.recorded_ids() == [m.msg_id for m in messages]
    assert summary["files"] == 3000
    sink.close()


def test_each_entry_carries_the_id_type_and_json_body(running_redis, stream, make_messages):
    # given
    message = make_messages(1)[0]
    sink = RedisStreamSink(url=running_redis.url, stream=stream, maxlen=10_000)

    # when
    sink.send([message])

    # then
    [(_, fields)] = redis.Redis.from_url(running_redis.url).xrange(stream)
    assert fields[b"msg_id"].decode() == message.msg_id
    assert fields[b"msg_type"] == b"file_stagein"
    assert json.loads(fields[b"body"]) == message.body


def test_it_keeps_the_stream_bounded(running_redis, stream, make_messages):
    # given
    sink = RedisStreamSink(url=running_redis.url, stream=stream, maxlen=1000)

    # when
    for _ in range(5):
        sink.send(make_messages(1000, files=1))

    # then: approximate trimming keeps it near the bound, far below the 5000 written
    assert redis.Redis.from_url(running_redis.url).xlen(stream) < 2000


def test_it_raises_a_transient_error_when_redis_is_down(stream, make_messages):
    # given
    sink = RedisStreamSink(url=f"redis://127.0.0.1:{free_port()}/0", stream=stream, maxlen=1000)

    # when / then
    with pytest.raises(TransientError, match=stream):
        sink.send(make_messages(2))


def test_nothing_is_lost_when_redis_stops_mid_way_and_comes_back(running_redis, stream, stream_consumer, make_messages):
    # given: a consumer group reader and a sender that retries until confirmed
    consumer = stream_consumer()
    messages = make_messages(600, files=50)
    sink = RedisStreamSink(url=running_redis.url, stream=stream, maxlen=100_000)

    # when the server goes down in the middle of the stream and comes back / then nothing is lost
    send_across_a_restart(sink, messages, running_redis, consumer)
