"""Each agent's tasks land in its own queue, and only there."""

from __future__ import annotations

import pytest

from activelearning.handoffs import AlTaskName
from hpo.handoffs import HpoTaskName
from idds_site.celery import app
from requests_app.handoffs import TaskName


def test_every_declared_queue_has_its_own_exchange_and_routing_key():
    queues = app.conf.task_queues
    bindings = [(q.exchange.name, q.routing_key) for q in queues]

    assert len(set(bindings)) == len(bindings)
    assert all(q.exchange.name == q.name == q.routing_key for q in queues)


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        (TaskName.REQUEST_PROCESS, "clerk"),
        (TaskName.TRANSFORM_PLAN, "transformer"),
        (TaskName.POLLS_ENQUEUE_DUE, "carrier"),
        (TaskName.MESSAGES_DELIVER, "conductor"),
        (TaskName.TRANSFORM_ROLLUP, "rollup"),
        (TaskName.REQUEST_CONTROL, "rollup"),
        (TaskName.WATCHDOG_SWEEP, "watchdog"),
        (HpoTaskName.GENERATION_RUN, "hpo_generate"),
        (HpoTaskName.STUDIES_SWEEP, "hpo"),
        (AlTaskName.STEP_RUN, "activelearning"),
        (AlTaskName.LOOP_CHECK, "activelearning"),
    ],
)
def test_agent_tasks_route_to_their_queue(task, queue):
    route = app.amqp.router.route({}, task)

    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue


@pytest.mark.parametrize("name", [*TaskName, *HpoTaskName, *AlTaskName])
def test_every_hand_off_names_a_registered_task(name):
    # Hand-offs send tasks by name: a name that no task carries would be lost on the broker.
    assert name in app.tasks


def test_each_registered_task_carries_the_name_of_the_service_it_runs():
    ours = {name: task for name, task in app.tasks.items() if name.startswith(("idds.", "hpo.", "activelearning."))}

    assert set(ours) == {*TaskName, *HpoTaskName, *AlTaskName}
    assert all(name.rsplit(".", 1)[1] == task.run.__name__ for name, task in ours.items())
