"""Each agent's tasks land in its own queue, and only there."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from activelearning.handoffs import AlTaskName
from hpo.handoffs import HpoTaskName
from idds_site.celery import app
from requests_app.handoffs import TaskName, send_now
from tests.broker import queued_tasks


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


@pytest.fixture(scope="module")
def registered_tasks() -> dict:
    """The tasks a worker registers: Celery imports every app's tasks module at worker start."""
    app.loader.import_default_modules()
    return app.tasks


@pytest.mark.parametrize("name", [*TaskName, *HpoTaskName, *AlTaskName])
def test_every_hand_off_names_a_registered_task(name, registered_tasks):
    # Hand-offs send tasks by name: a name that no task carries would be lost on the broker.
    assert name in registered_tasks


def test_each_registered_task_carries_the_name_of_the_service_it_runs(registered_tasks):
    ours = {
        name: task for name, task in registered_tasks.items() if name.startswith(("idds.", "hpo.", "activelearning."))
    }

    assert set(ours) == {*TaskName, *HpoTaskName, *AlTaskName}
    assert all(name.rsplit(".", 1)[1] == task.run.__name__ for name, task in ours.items())


def test_a_process_that_never_imported_the_task_modules_hands_off_by_name():
    # given: a fresh process (a web worker or a command), which Celery never made import tasks
    # modules; the message goes to a queue no test worker consumes, so it stays there to be read
    probe_queue = "handoff-probe"
    code = (
        "import django; django.setup()\n"
        "from requests_app.handoffs import TaskName, send_now\n"
        f"send_now(TaskName.TRANSFORM_PLAN, 12345, queue={probe_queue!r})\n"
    )

    # when
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "idds_site.settings_test"},
        check=True,
        timeout=60,
    )

    # then
    try:
        assert queued_tasks(probe_queue) == [(TaskName.TRANSFORM_PLAN, (12345,))]
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.client.delete(probe_queue)


def test_a_hand_off_from_another_thread_reaches_the_broker():
    # given: a thread of its own, as a threaded gunicorn worker serves requests (Celery's current
    # app is thread-local: without a default app the message would go to an unconfigured broker)
    probe_queue = "handoff-probe-thread"
    errors: list[BaseException] = []

    def hand_off() -> None:
        try:
            send_now(TaskName.TRANSFORM_PLAN, 54321, queue=probe_queue)
        except BaseException as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)

    # when
    thread = threading.Thread(target=hand_off)
    thread.start()
    thread.join(timeout=30)

    # then
    try:
        assert errors == []
        assert queued_tasks(probe_queue) == [(TaskName.TRANSFORM_PLAN, (54321,))]
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.client.delete(probe_queue)
