"""Active learning through the deployed iDDS client (idds-client 2.6.21): the original's request form over /idds/.

The original's own test submits ``request_type`` as the client's enum object, ``transform_tag`` "prodsys2" and
``workload_id`` as a string inside the metadata, with ``sandbox``, ``executable``, ``arguments`` and
``output_json``. Here the form maps to the active-learning work type with the native API's validation; the
parameter sets and the end of the loop reach the client as ``file_activelearning`` and
``collection_activelearning`` messages and as contents of the output collection.
"""

from __future__ import annotations

import pytest
from idds.common import exceptions
from idds.common.constants import CollectionRelationType as IdCollectionRelationType
from idds.common.constants import RequestStatus as IdRequestStatus
from idds.common.constants import RequestType as IdRequestType

from requests_app.models import Message, Request
from requests_app.models.statuses import MESSAGE_UNDELIVERED, RequestStatus
from tests.activelearning.conftest import STEPPER, new_parameters, report, tarball
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def program(settings, tmp_path):
    """Upload the stepping decision program (as tests/activelearning does); returns the metadata that runs it."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings.IDDS_SANDBOX_WORK_DIR = str(tmp_path / "work")
    settings.IDDS_SANDBOX_UPLOAD_DIR = str(uploads)
    settings.IDDS_SANDBOX_RUNTIME = "bubblewrap"
    settings.IDDS_SANDBOX_BINARY = ""
    settings.IDDS_SANDBOX_ALLOW_HOST = False
    name = tarball(uploads, {"decide.py": STEPPER})

    def make() -> dict:
        return {"executable": "python3 decide.py", "arguments": "%IN %OUT", "sandbox": name, "timeout": 20}

    return make


def original_form(metadata: dict, workload_id: str = "20525134") -> dict:
    """An active-learning request as the original's client test builds it (docs/idds-reference.md §3.5)."""
    return {
        "scope": "data15_13TeV",
        "name": "data15_13TeV.00270949.physics_Main.merge.AOD.r7600_p2521_tid07734829_00",
        "requester": "panda",
        "request_type": IdRequestType.ActiveLearning,
        "transform_tag": "prodsys2",
        "status": IdRequestStatus.New,
        "priority": 0,
        "lifetime": 30,
        "request_metadata": {"workload_id": workload_id, **metadata},
    }


def messages_of(idds, request_id: int, msg_type: str) -> list[dict]:
    return [m for m in idds.get_messages(request_id=request_id) if m["msg_type"] == msg_type]


def test_an_active_learning_request_in_the_original_form_runs_its_loop(celery_worker, idds, api, program):
    # given the original's form with an uploaded decision program and a first parameter set
    metadata = {**program(), "output_json": None, "initial_parameters": {"x": 1}}

    # when
    request_id = idds.add_request(**original_form(metadata))

    # then: stored as the native API stores it, the workload id an integer
    request = Request.objects.get(pk=request_id)
    assert (request.request_type, request.workload_id, request.transform_tag) == (3, 20525134, "prodsys2")
    (row,) = idds.get_requests(request_id=request_id)
    assert row["request_type"] == IdRequestType.ActiveLearning
    # the first parameter set is announced New, its parameters as the path (as HPO points are)
    (announced,) = wait_for(lambda: messages_of(idds, request_id, "file_activelearning"), what="the first set")
    assert announced["workload_id"] == 20525134
    assert [(f["name"], f["path"], f["status"]) for f in announced["files"]] == [("0", '{"x": 1}', "New")]

    # when the workload system reports the task's results, the decision runs and proposes x=2
    wait_for(lambda: new_parameters(api, request_id), what="the loop started")
    assert report(api, request_id, "0", {"y": 1}, {"y": 1}).status_code == 200
    second = wait_for(
        lambda: [
            f for m in messages_of(idds, request_id, "file_activelearning") for f in m["files"] if f["name"] == "1"
        ],
        what="the decision's parameter set",
    )
    assert second[0]["path"] == '{"x": 2}'
    # and when that task reaches the target the decision returns {}: the loop ends
    assert report(api, request_id, "1", {"y": 3}, {"y": 3}).status_code == 200

    # then the request finishes with the last decision as the collection message's output
    wait_for(lambda: Request.objects.filter(pk=request_id, status=RequestStatus.FINISHED).exists(), what="finished")
    (closed,) = wait_for(lambda: messages_of(idds, request_id, "collection_activelearning"), what="the collection")
    assert closed["output"] == {}
    assert closed["collections"][0]["status"] == "Closed"
    contents = idds.get_contents(request_id=request_id, relation_type=IdCollectionRelationType.Output)
    assert sorted(c["name"] for c in contents) == ["0", "1"]
    wait_for(lambda: not Message.objects.filter(status__in=MESSAGE_UNDELIVERED).exists(), what="outbox delivered")


def test_abort_over_the_client_cancels_a_loop_and_closes_its_collection(celery_worker, idds, program):
    # given a running loop
    request_id = idds.add_request(**original_form({**program(), "initial_parameters": {"x": 1}}))
    wait_for(lambda: messages_of(idds, request_id, "file_activelearning"), what="the first set")

    # when
    (reply,) = idds.abort_request(request_id=request_id)

    # then
    assert reply[0] == 0
    wait_for(lambda: Request.objects.filter(pk=request_id, status=RequestStatus.CANCELLED).exists(), what="cancelled")
    (closed,) = wait_for(lambda: messages_of(idds, request_id, "collection_activelearning"), what="the collection")
    assert closed["collections"][0]["status"] == "Closed"
    wait_for(lambda: not Message.objects.filter(status__in=MESSAGE_UNDELIVERED).exists(), what="outbox delivered")


def test_the_original_form_without_first_parameters_is_a_bad_request_naming_the_field(idds, program):
    with pytest.raises(exceptions.BadRequest, match="initial_parameters"):
        idds.add_request(**original_form(program()))
    assert not Request.objects.exists()


def test_arguments_without_the_input_placeholder_are_a_bad_request(idds, program):
    # the original's test passes "-1 -2 test": the decision would not know where the results are
    with pytest.raises(exceptions.BadRequest, match="%IN"):
        idds.add_request(**original_form({**program(), "arguments": "-1 -2 test", "initial_parameters": {"x": 1}}))


def test_a_sandbox_url_is_a_bad_request_saying_where_to_upload(idds):
    metadata = {
        "sandbox": "https://idds.example/idds/cacher/activelearning_test_codes.tgz",
        "executable": "test.sh",
        "arguments": "%IN %OUT",
        "initial_parameters": {"x": 1},
    }
    with pytest.raises(exceptions.BadRequest, match="activelearning/uploads"):
        idds.add_request(**original_form(metadata))


def test_a_workload_id_that_is_not_a_number_is_a_bad_request(idds, program):
    with pytest.raises(exceptions.BadRequest, match="workload_id"):
        idds.add_request(**original_form({**program(), "initial_parameters": {"x": 1}}, workload_id="w-17"))
