"""Each agent's tasks land in its own queue, and only there."""

from __future__ import annotations

import pytest

from idds_site.celery import app


def test_every_declared_queue_has_its_own_exchange_and_routing_key():
    queues = app.conf.task_queues
    bindings = [(q.exchange.name, q.routing_key) for q in queues]

    assert len(set(bindings)) == len(bindings)
    assert all(q.exchange.name == q.name == q.routing_key for q in queues)


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("idds.clerk.process_request", "clerk"),
        ("idds.transformer.plan_transform", "transformer"),
        ("idds.carrier.poll_processing", "carrier"),
        ("idds.conductor.deliver", "conductor"),
        ("idds.rollup.rollup_transform", "rollup"),
        ("idds.watchdog.sweep", "watchdog"),
    ],
)
def test_agent_tasks_route_to_their_queue(task, queue):
    route = app.amqp.router.route({}, task)

    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue
