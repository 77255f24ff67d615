"""The deployed iDDS client (idds-client 2.6.21) driving this service over /idds/ on a live server.

Every call goes through the real ``Client`` or ``ClientManager`` (no hand-made HTTP), and every effect is
checked in the database afterwards, not only in the reply.
"""

from __future__ import annotations

import itertools

import pytest
from idds.common import exceptions
from idds.common.constants import CollectionRelationType as IdCollectionRelationType
from idds.common.constants import ContentStatus as IdContentStatus
from idds.common.constants import RequestStatus as IdRequestStatus

from requests_app.models import Request
from requests_app.models.statuses import REQUEST_TERMINAL, RequestStatus
from tests.conftest import wait_for

from .conftest import panda_hpo, panda_stagein

pytestmark = pytest.mark.django_db(transaction=True)

STUDY_DEADLINE = 180.0


def status_of(request_id: int) -> int:
    return Request.objects.values_list("status", flat=True).get(pk=request_id)


def reaches(request_id: int, *statuses: int, timeout: float = 90) -> Request:
    return wait_for(
        lambda: Request.objects.filter(pk=request_id, status__in=statuses).first(),
        timeout=timeout,
        what=f"request {request_id} in {[RequestStatus(s).label for s in statuses]}",
    )


def staged(idds, tape_catalogue, settings, files: int = 5, **metadata) -> int:
    """A stage-in submitted in PanDA's form and finished."""
    settings.IDDS_TAPE_TIME_SCALE = 0.0
    (spec,) = tape_catalogue(files=files)
    request_id = idds.add_request(**panda_stagein(spec.scope, spec.name, **metadata))
    reaches(request_id, RequestStatus.FINISHED)
    return request_id


def test_ping_answers_ok_to_client_and_manager(idds, manager):
    # when / then
    assert idds.ping() == {"Status": "OK"}
    assert manager.ping() == {"Status": "OK"}


def test_a_stagein_in_panda_form_is_staged_and_reported_as_finished(
    celery_worker, idds, manager, tape_catalogue, settings
):
    # given / when
    request_id = staged(idds, tape_catalogue, settings)

    # then: stored as the native API would store it, and reported with the client's enums and dates
    request = Request.objects.get(pk=request_id)
    assert (request.request_type, request.workload_id, request.owner.username) == (2, 123456790, "alice")
    (row,) = idds.get_requests(request_id=request_id)
    assert row["status"] == IdRequestStatus.Finished
    assert row["request_type"].name == "StageIn"
    assert row["created_at"].endswith(" UTC")
    assert row["created_at"][3:5] == ", "
    report = manager.get_status(request_id=request_id)
    assert "Finished" in report
    assert str(request_id) in report
    detailed = manager.get_status(request_id=request_id, with_detail=True)
    assert "[5/5/0]" in detailed


def test_get_requests_answers_every_flag_combination(celery_worker, idds, tape_catalogue, settings):
    # given
    request_id = staged(idds, tape_catalogue, settings, workload_id=5151)

    for detail, metadata, transform, processing in itertools.product([False, True], repeat=4):
        # when
        rows = idds.get_requests(
            request_id=request_id,
            workload_id=None,
            with_detail=detail,
            with_metadata=metadata,
            with_transform=transform,
            with_processing=processing,
        )

        # then
        flags = (detail, metadata, transform, processing)
        assert rows, flags
        assert all(r["request_id"] == request_id for r in rows), flags
        assert all(("request_metadata" in r) == metadata for r in rows), flags
        assert all(("transform_id" in r) == (detail or transform or processing) for r in rows), flags
        assert all(("processing_id" in r) == processing for r in rows), flags
        if metadata:
            assert rows[0]["request_metadata"]["workload_id"] == 5151
    by_workload = idds.get_requests(request_id=None, workload_id=5151)
    assert [r["request_id"] for r in by_workload] == [request_id]
    assert request_id in [r["request_id"] for r in idds.get_requests()]


def test_an_hpo_study_runs_to_its_end_driven_only_by_the_client(celery_worker, idds):
    # given: PanDA's HPO request (bayesian, an initial point, 6 points in all)
    request_id = idds.add_request(**panda_hpo(method="bayesian"))

    # when: a worker loop that knows only get_hyperparameters and update_hyperparameter
    reported = set()

    def evaluate_open_points() -> bool:
        for point in idds.get_hyperparameters(workload_id=None, request_id=request_id) or []:
            if point["loss"] is None and point["id"] not in reported:
                loss = (point["parameters"]["lr"] - 0.01) ** 2 + point["parameters"]["dropout"]
                assert idds.update_hyperparameter(None, request_id, point["id"], loss) == {
                    "status": 0,
                    "message": "update successfully",
                }
                reported.add(point["id"])
        return status_of(request_id) in REQUEST_TERMINAL

    wait_for(evaluate_open_points, timeout=STUDY_DEADLINE, interval=0.2, what="the study to finish")

    # then
    assert status_of(request_id) == RequestStatus.FINISHED
    points = idds.get_hyperparameters(workload_id=123456789, request_id=request_id)
    assert len(points) == 6
    assert all(p["loss"] is not None for p in points)
    assert {"lr": 0.01, "dropout": 0.1} in [p["parameters"] for p in points]
    assert all(isinstance(p["id"], str) and p["id"].isdigit() for p in points)
    one = idds.get_hyperparameters(None, request_id, id=points[1]["id"])
    assert one == [points[1]]
    assert len(idds.get_hyperparameters(None, request_id, status="Available", limit=2)) == 2


def test_abort_cancels_a_staging_request(celery_worker, idds, manager, tape_catalogue, settings):
    # given: a slow tape keeps the request staging
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    (spec,) = tape_catalogue(files=20)
    request_id = idds.add_request(**panda_stagein(spec.scope, spec.name))
    reaches(request_id, RequestStatus.TRANSFORMING)

    # when
    reply = manager.abort(request_id=request_id)

    # then
    assert reply == [[0, {"status": 0, "message": "Command registered successfully"}]]
    reaches(request_id, RequestStatus.CANCELLED)
    assert idds.get_requests(request_id=request_id)[0]["status"] == IdRequestStatus.Cancelled


def test_abort_of_nothing_says_no_match(idds):
    assert idds.abort_request(request_id=None, workload_id=987654321) == [
        [-1, {"status": -1, "message": "No match requests"}]
    ]


def test_close_finishes_a_running_study_with_what_it_has(celery_worker, idds, manager):
    # given: a study that would run for 50 points
    request_id = idds.add_request(**panda_hpo(max_points=50))
    reaches(request_id, RequestStatus.TRANSFORMING)

    # when
    reply = manager.close(request_id=request_id)

    # then
    assert reply == [[0, {"status": 0, "message": "Command registered successfully"}]]
    reaches(request_id, RequestStatus.FINISHED, RequestStatus.SUBFINISHED)


def test_retry_runs_a_partly_finished_request_again(celery_worker, idds, manager, tape_catalogue, settings):
    # given: a stage-in whose stuck files fail for good (SubFinished)
    settings.IDDS_TAPE_TIME_SCALE = 1e6
    (spec,) = tape_catalogue(files=10, stuck_fraction=0.3)
    request_id = idds.add_request(**panda_stagein(spec.scope, spec.name, max_extra_rules=0))
    reaches(request_id, RequestStatus.SUBFINISHED)

    # when
    reply = manager.retry(request_id=request_id)

    # then: the request left SubFinished and runs again (the Event log shows the move)
    assert reply == [[0, {"status": 0, "message": "Command registered successfully"}]]
    request = Request.objects.get(pk=request_id)
    assert request.events.filter(old_status=RequestStatus.SUBFINISHED, new_status=RequestStatus.TRANSFORMING).exists()


def test_retry_of_a_finished_request_is_refused_with_a_reason(celery_worker, idds, tape_catalogue, settings):
    request_id = staged(idds, tape_catalogue, settings)
    ((code, answer),) = idds.retry_request(request_id=request_id)
    assert code == -1
    assert "only Failed or SubFinished" in answer["message"]
    assert status_of(request_id) == RequestStatus.FINISHED


def test_update_request_suspends_and_resumes(celery_worker, idds, tape_catalogue, settings):
    # given
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    (spec,) = tape_catalogue(files=20)
    request_id = idds.add_request(**panda_stagein(spec.scope, spec.name))
    reaches(request_id, RequestStatus.TRANSFORMING)

    # when / then: the client's enum object, then a plain integer
    assert idds.update_request(request_id, {"status": IdRequestStatus.ToSuspend}) == {
        "status": 0,
        "message": "update successfully",
    }
    assert status_of(request_id) == RequestStatus.SUSPENDED
    idds.update_request(request_id, {"status": 13})
    assert status_of(request_id) == RequestStatus.TRANSFORMING


def test_the_update_request_message_command_suspends_resumes_and_aborts(celery_worker, idds, tape_catalogue, settings):
    # given
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    (spec,) = tape_catalogue(files=20)
    request_id = idds.add_request(**panda_stagein(spec.scope, spec.name))
    reaches(request_id, RequestStatus.TRANSFORMING)

    def command(status) -> None:
        idds.send_messages(request_id=request_id, msgs={"command": "update_request", "parameters": {"status": status}})

    # when / then
    command(IdRequestStatus.ToSuspend)
    assert status_of(request_id) == RequestStatus.SUSPENDED
    command(IdRequestStatus.ToResume)
    assert status_of(request_id) == RequestStatus.TRANSFORMING
    command(IdRequestStatus.ToCancel)
    reaches(request_id, RequestStatus.CANCELLED)


def test_get_messages_returns_the_bodies_consumers_get(celery_worker, idds, tape_catalogue, settings):
    request_id = staged(idds, tape_catalogue, settings, files=4)

    def collection_message() -> list:
        found = idds.get_messages(request_id=request_id)
        return found if any(m["msg_type"] == "collection_stagein" for m in found) else []

    messages = wait_for(collection_message, what="the collection message")
    files = [f["name"] for m in messages if m["msg_type"] == "file_stagein" for f in m["files"]]
    assert len(files) == 4
    assert all(m["request_id"] == request_id and m["workload_id"] == 123456790 for m in messages)


def test_get_collections_and_contents(celery_worker, idds, manager, tape_catalogue, settings):
    request_id = staged(idds, tape_catalogue, settings, files=3)

    collections = idds.get_collections(request_id=request_id)
    output = [c for c in collections if c["relation_type"] == IdCollectionRelationType.Output]
    assert len(output) == 1
    assert output[0]["status"].name == "Closed"
    assert output[0]["total_files"] == 3
    contents = manager.get_contents(
        request_id=request_id, relation_type=IdCollectionRelationType.Output, status=IdContentStatus.Available
    )
    assert len(contents) == 3
    assert {c["status"] for c in contents} == {IdContentStatus.Available}
    by_name = idds.get_collections(scope=output[0]["scope"], name=output[0]["name"])
    assert {c["coll_id"] for c in by_name} >= {output[0]["coll_id"]}


# --- errors, each as the client's exception class with a useful message -----------------------------


def test_a_bad_request_type_is_a_bad_request_naming_it(idds):
    with pytest.raises(exceptions.BadRequest, match="request_type"):
        idds.add_request(**{**panda_hpo(), "request_type": 77})
    assert not Request.objects.exists()


def test_an_hpo_request_without_a_space_is_a_bad_request_naming_the_field(idds):
    body = panda_hpo()
    del body["request_metadata"]["opt_space"]
    with pytest.raises(exceptions.BadRequest, match="opt_space"):
        idds.add_request(**body)


def test_an_unknown_field_is_a_bad_request(idds):
    with pytest.raises(exceptions.BadRequest, match="colour"):
        idds.add_request(**panda_hpo(), colour="blue")


def test_an_unknown_point_is_no_object(celery_worker, idds):
    request_id = idds.add_request(**panda_hpo())
    wait_for(lambda: idds.get_hyperparameters(None, request_id), what="the first points")
    with pytest.raises(exceptions.NoObject, match="no point"):
        idds.update_hyperparameter(None, request_id, "999999", 0.5)


def test_a_loss_that_is_not_a_number_is_a_bad_request(celery_worker, idds):
    request_id = idds.add_request(**panda_hpo())
    wait_for(lambda: idds.get_hyperparameters(None, request_id), what="the first points")
    with pytest.raises(exceptions.BadRequest, match="loss"):
        idds.update_hyperparameter(None, request_id, "0", "nan")


def test_hyperparameters_of_no_study_are_no_object(idds):
    with pytest.raises(exceptions.NoObject, match="no hyperparameter-optimisation study"):
        idds.get_hyperparameters(None, 424242)


def test_an_id_that_is_not_a_number_is_a_bad_request(idds):
    with pytest.raises(exceptions.BadRequest, match="request_id"):
        idds.get_requests(request_id="abc")


def test_changing_another_users_request_is_refused(celery_worker, idds, other_idds):
    request_id = idds.add_request(**panda_hpo())
    with pytest.raises(exceptions.AuthenticationNoPermission, match="owner"):
        other_idds.abort_request(request_id=request_id)
    with pytest.raises(exceptions.AuthenticationNoPermission, match="owner"):
        other_idds.update_request(request_id, {"status": IdRequestStatus.ToSuspend})
    assert status_of(request_id) not in (RequestStatus.TO_CANCEL, RequestStatus.CANCELLED, RequestStatus.SUSPENDED)


def test_an_unknown_token_is_refused(live_server):
    from .conftest import client_for

    with pytest.raises(exceptions.AuthenticationNoPermission, match="invalid token"):
        client_for(live_server, "idds_not-a-real-key").ping()


def test_a_status_that_cannot_be_requested_is_a_bad_request(idds, celery_worker):
    request_id = idds.add_request(**panda_hpo())
    with pytest.raises(exceptions.BadRequest, match="cannot be requested"):
        idds.update_request(request_id, {"status": IdRequestStatus.Finished})
