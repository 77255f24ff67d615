"""The Redis transport repair (idds_site/redis_transport.py), on the exact state that killed workers.

A worker losing Redis under load ends up closing a channel that still holds unacknowledged
messages after its kombu Connection already detached the transport (``Connection.collect()``).
These tests build that state on a real Redis, deterministically, instead of hoping a restart
lands at the right moment (which the campaign test in test_campaign_faults.py also covers).
"""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.common import ignore_errors

from tools.servers import RedisServer

QUEUE = Queue("repair-test", Exchange("repair-test", type="direct"), routing_key="repair-test")
FIXED = "idds_site.redis_transport:Transport"
STOCK = "kombu.transport.redis:Transport"


@pytest.fixture
def redis_url(broker_redis: RedisServer) -> str:
    broker_redis.start()
    url = broker_redis.url_for(5)
    redis.Redis.from_url(url).flushdb()
    return url


def detached_with_unacked_message(url: str, transport: str) -> Connection:
    """A connection whose channel holds one unacked message, its transport detached as collect() does."""
    connection = Connection(url, transport=transport)
    channel = connection.channel()
    Producer(channel).publish({"n": 1}, exchange=QUEUE.exchange, routing_key="repair-test", declare=[QUEUE])
    received = []
    consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, message: received.append(body)], accept=["json"])
    consumer.consume()
    connection.drain_events(timeout=5)
    assert received == [{"n": 1}]
    connection._default_channel = channel
    connection._do_close_transport()
    return connection


def queued(url: str) -> int:
    return redis.Redis.from_url(url).llen("repair-test")


def test_stock_kombu_still_dies_on_this_state(redis_url: str) -> None:
    # given the state of a worker whose Redis went away mid-task, on kombu's own transport
    connection = detached_with_unacked_message(redis_url, STOCK)

    # when / then: the close Celery makes raises what killed the worker (when this stops failing,
    # kombu is fixed and idds_site/redis_transport.py can go)
    with pytest.raises(AttributeError, match="hostname"):
        connection.close()


def test_the_repaired_transport_closes_and_gives_the_unacked_message_back(redis_url: str) -> None:
    # given the same state on our transport
    connection = detached_with_unacked_message(redis_url, FIXED)
    assert queued(redis_url) == 0

    # when
    connection.close()

    # then nothing raised, and the unacknowledged message is back in its queue for the next worker
    assert queued(redis_url) == 1


def test_the_repaired_transport_closes_quietly_while_redis_is_down(redis_url: str, broker_redis: RedisServer) -> None:
    # given the same state, with Redis still down
    connection = detached_with_unacked_message(redis_url, FIXED)
    broker_redis.stop()
    try:
        # when the worker closes the broken connection the way Celery does
        ignore_errors(connection, connection.close)
        # then the error was an ordinary connection error, swallowed, and the channel is closed
        assert connection._default_channel.closed
    finally:
        broker_redis.start()
