"""Memoisation (a parameter set equal to an earlier one reuses its results) and fork (a new loop starting from
iteration k of an earlier one, with its history, under another decision program)."""

from __future__ import annotations

import pytest

from activelearning.models import Loop, Step, Trial
from requests_app.models.statuses import RequestStatus
from tests.activelearning.conftest import STEPPER, finished, run_workload, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

# Proposes x = 0 again until iteration 3, then stops.
REPEATER = """
import json, sys
doc = json.load(open(sys.argv[1]))
json.dump({} if doc["iteration"] >= 3 else {"x": 0}, open(sys.argv[2], "w"))
"""
STOP = "import json, sys; json.dump({}, open(sys.argv[2], 'w'))"


def test_memoised_parameters_reuse_earlier_results_without_a_task(api, program):
    # given
    request_id = submit(api, {**program(REPEATER), "initial_parameters": {"x": 0}, "memoise": True})

    # when
    reports = run_workload(api, request_id, lambda p: {"y": 7})

    # then: one task ran; iterations 2 and 3 reused its results
    assert reports == 1
    assert finished(request_id).status == RequestStatus.FINISHED
    trials = list(Trial.objects.filter(loop__request_id=request_id).order_by("iteration"))
    assert [(t.iteration, t.reported, t.results) for t in trials] == [(1, True, {"y": 7})] * 1 + [
        (2, True, {"y": 7}),
        (3, True, {"y": 7}),
    ]
    assert [t.memo_of_id for t in trials] == [None, trials[0].pk, trials[0].pk]
    assert Step.objects.filter(loop__request_id=request_id).count() == 3


def test_without_memoisation_a_repeated_parameter_set_runs_again(api, program):
    # given
    request_id = submit(api, {**program(REPEATER), "initial_parameters": {"x": 0}})

    # when
    reports = run_workload(api, request_id, lambda p: {"y": 7})

    # then
    assert reports == 3
    assert not Trial.objects.filter(loop__request_id=request_id, memo_of__isnull=False).exists()


def test_a_fork_starts_from_iteration_k_with_its_history_and_another_program(api, program):
    # given: a finished loop of four iterations (x = 0, 1, 2, 3)
    source = submit(api, {**program(STEPPER), "initial_parameters": {"x": 0}})
    run_workload(api, source, lambda p: {"y": p["x"]})

    # when: forked at iteration 2 with a program that stops at once
    fork = submit(api, {**program(STOP), "fork": {"request_id": source, "iteration": 2}})
    wait_for(lambda: finished(fork), what="the fork to end")

    # then: the fork holds x = 0, 1 with their results, step 1 copied, and its own step 2
    trials = list(Trial.objects.filter(loop__request_id=fork).order_by("iteration"))
    assert [(t.iteration, t.parameters, t.results) for t in trials] == [
        (1, {"x": 0}, {"y": 0}),
        (2, {"x": 1}, {"y": 1}),
    ]
    steps = list(Step.objects.filter(loop__request_id=fork).order_by("id"))
    original = Step.objects.get(loop__request_id=source, number=1)
    assert [(s.number, s.forked_from_id, s.outcome) for s in steps] == [(1, original.pk, "next"), (2, None, "stop")]
    assert [r["name"] for r in steps[1].input["results"]] == ["1"]
    assert Loop.objects.get(request_id=fork).stop_reason == "the decision returned {}"


def test_a_fork_with_new_parameters_hands_them_out_as_iteration_k_plus_1(api, program):
    # given
    source = submit(api, {**program(STEPPER), "initial_parameters": {"x": 0}})
    run_workload(api, source, lambda p: {"y": p["x"]})

    # when
    fork = submit(
        api, {**program(STEPPER), "fork": {"request_id": source, "iteration": 1}, "initial_parameters": {"x": 2}}
    )
    reports = run_workload(api, fork, lambda p: {"y": p["x"]})

    # then: x = 2 ran, then x = 3 reached y = 3
    assert reports == 2
    assert list(Trial.objects.filter(loop__request_id=fork).values_list("iteration", "parameters")) == [
        (1, {"x": 0}),
        (2, {"x": 2}),
        (3, {"x": 3}),
    ]
