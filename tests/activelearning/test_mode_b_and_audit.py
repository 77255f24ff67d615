"""Mode (b): one call per step, answered with the decision or a step id to fetch; the audit trail over REST
and in the admin; an allow-listed callable instead of a program."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from django.conf import settings

from activelearning.models import Step
from tests.activelearning.conftest import STEPPER, loop_url, new_parameters, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

SLOW = "import json, sys, time; time.sleep(2); json.dump({'x': 9}, open(sys.argv[2], 'w'))"


def stop_at_three(document: dict) -> dict:
    """An operator's decision: next x, or {} once y reached 3."""
    last = document["results"][-1]
    return {} if last["metrics"]["y"] >= 3 else {"x": last["parameters"]["x"] + 1}


def _step(api, request_id: int, parameters: dict, y: float, wait: float = 20.0):
    body = {"parameters": parameters, "results": {"y": y}, "metrics": {"y": y}, "wait": wait}
    return api.post(loop_url(request_id, "steps/"), body, format="json")


def test_a_step_call_returns_the_decision_when_it_finishes_in_time(api, program):
    # given
    request_id = submit(api, {**program(STEPPER), "initial_parameters": {"x": 0}})
    wait_for(lambda: new_parameters(api, request_id))

    # when: the caller ran x = 0 itself and posts its results
    first = _step(api, request_id, {"x": 0}, 0)

    # then
    assert first.status_code == 200, first.content
    assert (first.json()["status"], first.json()["output"]) == ("done", {"x": 1})
    second = _step(api, request_id, {"x": 1}, 3)
    assert second.json()["output"] == {}
    assert _step(api, request_id, {"x": 2}, 0).status_code == 409


def test_a_slow_step_call_answers_202_with_the_step_to_fetch(api, program):
    # given
    request_id = submit(api, {**program(SLOW), "initial_parameters": {"x": 0}})
    wait_for(lambda: new_parameters(api, request_id))

    # when
    response = _step(api, request_id, {"x": 0}, 0, wait=0)

    # then
    assert response.status_code == 202
    url = loop_url(request_id, f"steps/{response.json()['id']}/")
    done = wait_for(lambda: (r := api.get(url).json())["status"] == "done" and r)
    assert done["output"] == {"x": 9}


def test_every_step_keeps_its_inputs_program_outputs_duration_and_exit_status(api, client, staff_user, program):
    # given
    metadata = {**program(STEPPER), "initial_parameters": {"x": 2}}
    request_id = submit(api, metadata)
    wait_for(lambda: new_parameters(api, request_id))
    _step(api, request_id, {"x": 2}, 2)

    # when
    steps = api.get(loop_url(request_id, "steps/")).json()

    # then
    assert len(steps) == 1
    step = steps[0]
    assert step["input"]["results"][0]["parameters"] == {"x": 2}
    assert step["input_sha256"] == hashlib.sha256(json.dumps(step["input"], sort_keys=True).encode()).hexdigest()
    tarball = Path(settings.IDDS_SANDBOX_UPLOAD_DIR) / metadata["sandbox"]
    assert step["program_sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert step["program"]["executable"] == "python3 decide.py"
    assert (step["output"], step["returncode"], step["runtime"]) == ({"x": 3}, 0, "bubblewrap")
    assert step["duration_seconds"] > 0
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    page = client.get(f"/admin/activelearning/step/{step['id']}/change/")
    assert page.status_code == 200
    assert step["input_sha256"] in page.content.decode()


def test_an_allow_listed_callable_decides_in_the_worker(api, settings):
    # given
    settings.IDDS_AL_CALLABLES = {"stop-at-three": f"{__name__}.stop_at_three"}
    request_id = submit(api, {"callable": "stop-at-three", "initial_parameters": {"x": 0}})
    wait_for(lambda: new_parameters(api, request_id))

    # when
    response = _step(api, request_id, {"x": 0}, 0)

    # then
    assert response.json()["output"] == {"x": 1}
    step = Step.objects.get(pk=response.json()["id"])
    assert step.program == {"callable": "stop-at-three", "path": f"{__name__}.stop_at_three"}


def test_messages_of_the_loop_are_readable_through_rest(api, program):
    # given
    request_id = submit(api, {**program(STEPPER), "initial_parameters": {"x": 0}})
    wait_for(lambda: new_parameters(api, request_id))
    _step(api, request_id, {"x": 0}, 5)

    # when
    messages = wait_for(lambda: len(r := api.get(loop_url(request_id, "messages/")).json()) >= 2 and r)

    # then
    assert [m["msg_type"] for m in messages][:1] == ["file_activelearning"]
    assert messages[-1]["body"]["msg_type"] == "collection_activelearning"
    assert messages[-1]["body"]["output"] == {}
