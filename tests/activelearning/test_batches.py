"""Batches with a quorum: the decision runs once a fraction reported and the grace time passed; stragglers'
late results are recorded and passed to the following decision."""

from __future__ import annotations

import pytest

from activelearning.models import Loop, Step, Trial
from requests_app.models import Message
from tests.activelearning.conftest import finished, new_parameters, report, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

# Iteration 1 -> a batch of three; iteration 2 -> [].
BATCHER = """
import json, sys
doc = json.load(open(sys.argv[1]))
it = doc["iteration"]
json.dump([{"x": 10 * it + i} for i in range(3)] if it < 2 else [], open(sys.argv[2], "w"))
"""


def test_a_quorum_decides_after_its_grace_time_and_late_results_reach_the_next_decision(api, program):
    # given: a batch of three, quorum 60 % with 0.5 s of grace
    metadata = {
        **program(BATCHER),
        "initial_parameters": [{"x": 0}, {"x": 1}, {"x": 2}],
        "quorum": {"fraction": 0.6, "grace_seconds": 0.5},
    }
    request_id = submit(api, metadata)
    first = wait_for(lambda: new_parameters(api, request_id), what="the first batch")
    assert [t["parameters"] for t in first] == [{"x": 0}, {"x": 1}, {"x": 2}]

    # when: two of three report
    for trial in first[:2]:
        assert report(api, request_id, trial["name"], {"y": trial["parameters"]["x"]}).status_code == 200

    # then: the decision runs on those two and hands out a batch of three
    step1 = wait_for(lambda: Step.objects.filter(loop__request_id=request_id, number=1, status="done").first())
    assert step1.trigger == "quorum"
    assert [r["name"] for r in step1.input["results"]] == ["0", "1"]
    second = wait_for(lambda: [t for t in new_parameters(api, request_id) if t["iteration"] == 2])
    assert [t["parameters"] for t in second] == [{"x": 10}, {"x": 11}, {"x": 12}]
    announced = Message.objects.filter(request_id=request_id, msg_type="file_activelearning").order_by("id")
    assert [f["name"] for m in announced for f in m.body["files"]] == ["0", "1", "2", "3", "4", "5"]

    # when: the straggler reports late, then the whole second batch
    assert report(api, request_id, first[2]["name"], {"y": 2}).status_code == 200
    assert Trial.objects.get(loop__request_id=request_id, name=first[2]["name"]).late
    for trial in second:
        assert report(api, request_id, trial["name"], {"y": trial["parameters"]["x"]}).status_code == 200

    # then: the next decision ran on all of batch 2, with the straggler as late, and ended the loop
    wait_for(lambda: finished(request_id), what="the loop to end")
    step2 = Step.objects.get(loop__request_id=request_id, number=2)
    assert step2.trigger == "all"
    assert [r["name"] for r in step2.input["results"]] == ["3", "4", "5"]
    assert [(r["name"], r["results"]) for r in step2.input["late"]] == [("2", {"y": 2})]
    assert Loop.objects.get(request_id=request_id).stop_reason == "the decision returned []"


def test_a_batch_without_quorum_waits_for_every_result(api, program):
    # given
    request_id = submit(api, {**program(BATCHER), "initial_parameters": [{"x": 0}, {"x": 1}]})
    first = wait_for(lambda: new_parameters(api, request_id))

    # when
    report(api, request_id, first[0]["name"], {"y": 0})

    # then: no decision yet; the second report starts it
    assert not Step.objects.filter(loop__request_id=request_id).exists()
    report(api, request_id, first[1]["name"], {"y": 1})
    step = wait_for(lambda: Step.objects.filter(loop__request_id=request_id, status="done").first())
    assert step.trigger == "all"
