"""Stop rules applied by the service: max iterations, deadline, target on a metric, plateau; [] ends a loop too."""

from __future__ import annotations

import pytest

from activelearning.models import Loop, Step
from requests_app.models import Message
from requests_app.models.statuses import RequestStatus
from tests.activelearning.conftest import finished, run_workload, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

# Never stops on its own: x + 1 forever.
FOREVER = """
import json, sys
doc = json.load(open(sys.argv[1]))
json.dump({"x": doc["results"][-1]["parameters"]["x"] + 1}, open(sys.argv[2], "w"))
"""


def _ended(request_id: int) -> Loop:
    wait_for(lambda: finished(request_id), what="the request to end")
    return Loop.objects.get(request_id=request_id)


@pytest.mark.parametrize(
    ("rules", "evaluate", "reports", "reason"),
    [
        ({"max_iterations": 3}, lambda p: {"y": p["x"]}, 3, "reached max_iterations=3"),
        ({"target": {"metric": "y", "value": 2, "mode": "max"}}, lambda p: {"y": p["x"]}, 3, "target met: y=2"),
        (
            {"plateau": {"metric": "y", "delta": 0.5, "patience": 2, "mode": "min"}},
            lambda p: {"y": 5.0 - 0.1 * p["x"]},
            3,
            "plateau: y improved by 0.2",
        ),
    ],
    ids=["max_iterations", "target", "plateau"],
)
def test_a_stop_rule_ends_the_loop_and_records_why(api, program, rules, evaluate, reports, reason):
    # given
    request_id = submit(api, {**program(FOREVER), "initial_parameters": {"x": 0}, **rules})

    # when
    done = run_workload(api, request_id, evaluate)

    # then
    loop = _ended(request_id)
    assert Loop.objects.get(pk=loop.pk).status == Loop.Status.FINISHED
    assert finished(request_id).status == RequestStatus.FINISHED
    assert done == reports
    assert loop.stop_reason.startswith(reason)
    assert Step.objects.filter(loop=loop).count() == reports - 1
    collection = wait_for(
        lambda: Message.objects.filter(request_id=request_id, msg_type="collection_activelearning").first()
    )
    assert collection.body["output"] == {"x": reports - 1}


def test_the_deadline_ends_a_loop_that_waits_for_results(api, program):
    # given: nobody ever reports
    request_id = submit(api, {**program(FOREVER), "initial_parameters": {"x": 0}, "deadline_seconds": 1.0})

    # when
    loop = _ended(request_id)

    # then
    assert loop.stop_reason == "reached its deadline of 1 s"
    assert finished(request_id).status == RequestStatus.FINISHED


def test_an_empty_list_ends_the_loop(api, program):
    # given
    code = "import json, sys; json.dump([], open(sys.argv[2], 'w'))"
    request_id = submit(api, {**program(code), "initial_parameters": [{"x": 0}, {"x": 1}]})

    # when
    run_workload(api, request_id, lambda p: {"y": p["x"]})

    # then
    loop = _ended(request_id)
    assert loop.stop_reason == "the decision returned []"
    assert loop.last_decision == []
    assert Step.objects.get(loop=loop).outcome == Step.Outcome.STOP
