"""The broker helpers: they notice a running broker and refuse a port that is taken."""

from __future__ import annotations

import pytest

from tools.brokers import ActiveMQBroker, BrokerError, ensure_activemq, port_open, stomp_connector


def test_ensure_activemq_leaves_a_broker_that_already_answers_alone(running_activemq):
    # when
    started = ensure_activemq(running_activemq.port)

    # then
    assert started is False
    assert port_open("127.0.0.1", running_activemq.port)


def test_a_private_broker_refuses_a_port_that_is_taken(running_activemq, tmp_path):
    # given
    second = ActiveMQBroker(running_activemq.port, tmp_path)

    # when / then
    with pytest.raises(BrokerError, match="already taken"):
        second.start()


def test_the_stomp_connector_caps_the_frame_size():
    # when
    element = stomp_connector(61613, max_frame_bytes=1024)

    # then
    assert element == '<transportConnector name="stomp" uri="stomp://127.0.0.1:61613?transport.maxFrameSize=1024"/>'
