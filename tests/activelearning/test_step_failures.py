"""A decision that times out, crashes or writes garbage fails its step with the reason; the loop fails after
max_failed_steps failed steps in a row. An abort in the middle of a decision applies nothing."""

from __future__ import annotations

import pytest

from activelearning.models import Loop, Step, Trial
from requests_app.models import Request
from requests_app.models.statuses import RequestStatus
from requests_app.services.requests import request_abort
from tests.activelearning.conftest import finished, new_parameters, report, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

SLEEPER = "import time; time.sleep(30)"
CRASH = "import sys; print('about to divide'); 1 / 0"
NOT_JSON = "import sys; open(sys.argv[2], 'w').write('this is not json')"
A_NUMBER = "import sys; open(sys.argv[2], 'w').write('42')"
SLOW_NEXT = "import json, sys, time; time.sleep(3); json.dump({'x': 1}, open(sys.argv[2], 'w'))"


def _start(api, metadata: dict) -> int:
    request_id = submit(api, {**metadata, "initial_parameters": {"x": 0}})
    first = wait_for(lambda: new_parameters(api, request_id), what="the first parameters")
    assert report(api, request_id, first[0]["name"], {"y": 0}).status_code == 200
    return request_id


@pytest.mark.parametrize(
    ("code", "timeout", "error", "check"),
    [
        (SLEEPER, 1, "the program exceeded its wall-clock limit of 1 s", lambda s: s.stopped == "wall"),
        (CRASH, 20, "the program exited with status 1", lambda s: "ZeroDivisionError" in s.stderr_tail),
        (NOT_JSON, 20, "the output is not valid JSON", lambda s: s.output_text == "this is not json"),
        (A_NUMBER, 20, "the decision output must be a JSON object", lambda s: s.output == 42),
    ],
    ids=["timeout", "crash", "garbage", "not-an-object"],
)
def test_a_failing_decision_fails_its_steps_and_then_the_loop(api, program, code, timeout, error, check):
    # given
    request_id = _start(api, {**program(code), "timeout": timeout, "max_failed_steps": 2})

    # when
    request = wait_for(lambda: finished(request_id), what="the loop to fail")

    # then
    assert request.status == RequestStatus.FAILED
    steps = list(Step.objects.filter(loop__request_id=request_id).order_by("id"))
    assert [(s.number, s.status, s.trigger) for s in steps] == [(1, "failed", "all"), (1, "failed", "retry")]
    assert all(error in s.error for s in steps), [s.error for s in steps]
    assert all(check(s) for s in steps)
    loop = Loop.objects.get(request_id=request_id)
    assert loop.status == Loop.Status.FAILED
    assert loop.stop_reason.startswith("the decision failed 2 time(s) in a row; last error:")
    assert error in " ".join(request.errors["transforms"].values())


def test_an_abort_during_a_decision_applies_nothing(api, program):
    # given: a decision that takes 3 s is running
    request_id = _start(api, program(SLOW_NEXT))
    wait_for(lambda: Step.objects.filter(loop__request_id=request_id, status="running").exists())

    # when
    request_abort(request=Request.objects.get(pk=request_id))

    # then
    wait_for(lambda: finished(request_id), what="the abort")
    step = wait_for(lambda: Step.objects.filter(loop__request_id=request_id, status="skipped").first())
    assert step.output == {"x": 1}
    assert Trial.objects.filter(loop__request_id=request_id).count() == 1
    assert finished(request_id).status == RequestStatus.CANCELLED
    assert Loop.objects.get(request_id=request_id).status == Loop.Status.CANCELLED
