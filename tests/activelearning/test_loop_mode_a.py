"""Mode (a): one long-lived request; each task's results reported over REST start the decision at once."""

from __future__ import annotations

import pytest

from activelearning.models import Loop, Step
from requests_app.models import Message
from requests_app.models.statuses import RequestStatus
from tests.activelearning.conftest import finished, run_workload, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


def test_the_loop_runs_until_the_decision_returns_an_empty_object(api, program):
    # given: the program moves x by one until y = x reaches 3
    request_id = submit(api, {**program(), "initial_parameters": {"x": 0}})

    # when
    reports = run_workload(api, request_id, lambda p: {"y": p["x"]})

    # then
    request = wait_for(lambda: finished(request_id), what="the request to end")
    assert request.status == RequestStatus.FINISHED
    assert reports == 4
    loop = Loop.objects.get(request_id=request_id)
    assert loop.stop_reason == "the decision returned {}"
    assert list(Step.objects.filter(loop=loop).values_list("number", "outcome")) == [
        (1, "next"),
        (2, "next"),
        (3, "next"),
        (4, "stop"),
    ]
    files = Message.objects.filter(request_id=request_id, msg_type="file_activelearning").order_by("id")
    assert [m.body["files"][0]["path"] for m in files] == ['{"x": 0}', '{"x": 1}', '{"x": 2}', '{"x": 3}']
    assert all(m.body["files"][0]["status"] == "New" for m in files)
    collection = wait_for(
        lambda: Message.objects.filter(request_id=request_id, msg_type="collection_activelearning").first()
    )
    assert collection.body["output"] == {}
