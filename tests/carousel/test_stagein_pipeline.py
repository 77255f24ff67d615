"""Stage-in requests carried by a real Celery worker over the simulated tape system."""

from __future__ import annotations

from carousel.backends.base import RuleRequest
from carousel.backends.simulator import SimulatorBackend
from carousel.models import SimFile, SimLock, SimRule
from carousel.tape.clock import current_clock
from carousel.throttle import inflight
from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    ContentStatus,
    MessageStatus,
    RequestStatus,
)
from tests.conftest import wait_for


def finished(request_id: int, status: int = RequestStatus.FINISHED, timeout: float = 90) -> Request:
    return wait_for(
        lambda: Request.objects.filter(pk=request_id, status=status).first(),
        timeout=timeout,
        what=f"request {request_id} {RequestStatus(status).label}",
    )


def announced_files(request_id: int) -> list[tuple[int, str]]:
    """(message id, file name) for every file of every file_stagein message, in message order."""
    return [
        (pk, entry["name"])
        for pk, body in Message.objects.filter(request_id=request_id, msg_type="file_stagein")
        .order_by("id")
        .values_list("pk", "body")
        for entry in body["files"]
    ]


def output_of(request_id: int) -> Collection:
    return Collection.objects.get(request_id=request_id, relation_type=CollectionRelationType.OUTPUT)


def test_it_stages_a_dataset_and_announces_every_file_exactly_once(
    celery_worker, settings, tape_catalogue, submit_stagein
):
    # given
    settings.IDDS_TAPE_TIME_SCALE = 0.0
    (spec,) = tape_catalogue(files=30)

    # when
    request_id = submit_stagein(spec)

    # then
    finished(request_id)
    output = output_of(request_id)
    assert (output.status, output.total_files, output.processed_files) == (CollectionStatus.CLOSED, 30, 30)
    names = [name for _, name in announced_files(request_id)]
    assert sorted(names) == sorted(Content.objects.filter(collection=output).values_list("name", flat=True))
    assert len(names) == len(set(names)) == 30
    closing = wait_for(
        lambda: Message.objects.filter(
            request_id=request_id, msg_type="collection_stagein", status=MessageStatus.DELIVERED
        ).first(),
        what="collection message delivered",
    )
    assert closing.body["collections"] == [{"scope": spec.scope, "name": spec.name, "status": "Closed"}]


def test_it_releases_files_in_the_order_they_land(celery_worker, settings, tape_catalogue, submit_stagein):
    # given: two datasets on one drive each, landing over a few real seconds
    settings.IDDS_TAPE_TIME_SCALE = 60.0
    specs = tape_catalogue(datasets=2, files=15)

    # when
    request_ids = [submit_stagein(spec) for spec in specs]

    # then
    for request_id in request_ids:
        finished(request_id)
    landing = dict(SimLock.objects.filter(fails=False).values_list("file__name", "event_at"))
    for request_id, spec in zip(request_ids, specs, strict=True):
        released = announced_files(request_id)
        # Every file of the dataset, each once ...
        dataset_files = SimFile.objects.filter(dataset__scope=spec.scope, dataset__name=spec.name)
        assert sorted(name for _, name in released) == sorted(dataset_files.values_list("name", flat=True))
        # ... and in the order it landed: across messages and within each message, file by file.
        landing_times = [landing[name] for _, name in released]
        assert landing_times == sorted(landing_times)
    assert Message.objects.filter(msg_type="file_stagein").count() > 2


def test_it_restages_stuck_files_from_another_source_and_releases_them(
    celery_worker, settings, tape_catalogue, submit_stagein, api
):
    # given: a third of the files cannot be read from their first copy
    settings.IDDS_TAPE_TIME_SCALE = 1e6
    (spec,) = tape_catalogue(files=30, stuck_fraction=0.3)

    # when
    request_id = submit_stagein(spec, max_waiting_time=60)

    # then
    finished(request_id)
    stuck = set(SimLock.objects.filter(fails=True).values_list("file__name", flat=True))
    assert stuck, "the catalogue was meant to have stuck files"
    processing = Processing.objects.get(request_id=request_id)
    main, restage = processing.processing_metadata["rules"]
    assert restage["kind"] == "restage"
    assert restage["avoid_source"] == Transform.objects.get(request_id=request_id).transform_metadata["source"]
    assert restage["stuck_files"] == len(stuck)
    restage_rules = SimRule.objects.filter(pk__in=restage["rule_ids"])
    assert {rule.source_replica_expression for rule in restage_rules} == {f"*\\{restage['avoid_source']}"}
    names = [name for _, name in announced_files(request_id)]
    assert len(names) == len(set(names)) == 30
    assert stuck <= set(names)
    detail = api.get(f"/api/v1/processings/{processing.pk}/").json()
    assert len(detail["processing_metadata"]["rules"]) == 2


def test_it_fails_files_that_stay_stuck_when_no_extra_rule_is_allowed(
    celery_worker, settings, tape_catalogue, submit_stagein
):
    # given
    settings.IDDS_TAPE_TIME_SCALE = 1e6
    (spec,) = tape_catalogue(files=30, stuck_fraction=0.3)

    # when
    request_id = submit_stagein(spec, max_extra_rules=0)

    # then
    finished(request_id, RequestStatus.SUBFINISHED)
    stuck = set(SimLock.objects.filter(fails=True).values_list("file__name", flat=True))
    output = output_of(request_id)
    assert (output.status, output.failed_files, output.processed_files) == (
        CollectionStatus.SUBCLOSED,
        len(stuck),
        30 - len(stuck),
    )
    closing = wait_for(
        lambda: Message.objects.filter(request_id=request_id, msg_type="collection_stagein").first(),
        what="collection message",
    )
    assert sorted(closing.body["output"]["failed_files"]) == sorted(stuck)
    assert set(stuck).isdisjoint(name for _, name in announced_files(request_id))


def test_it_holds_requests_in_throttling_while_their_source_is_full(
    celery_worker, settings, tape_catalogue, submit_stagein
):
    # given: four 20-file datasets, a source window of 40 files
    settings.IDDS_TAPE_TIME_SCALE = 100.0
    settings.IDDS_CAROUSEL_MAX_FILES_PER_SOURCE = 40
    settings.IDDS_CAROUSEL_MAX_STAGING_RATIO = 1.0
    specs = tape_catalogue(datasets=4, files=20, libraries=1)

    # when
    request_ids = [submit_stagein(spec) for spec in specs]

    # then: the window is never exceeded while the requests run, and some had to wait
    def all_done() -> bool:
        assert inflight(source="SIM-1_TAPE") <= 40
        return not Request.objects.filter(pk__in=request_ids).exclude(status=RequestStatus.FINISHED).exists()

    wait_for(all_done, timeout=120, interval=0.05, what="every request finished")
    throttled = Event.objects.filter(
        entity="request", entity_id__in=request_ids, new_status=RequestStatus.THROTTLING
    ).values_list("entity_id", "reason")
    assert throttled
    assert all("SIM-1_TAPE" in reason for _, reason in throttled)
    assert sum(len(announced_files(request_id)) for request_id in request_ids) == 80


def test_it_aborts_a_request_and_deletes_its_rule(celery_worker, settings, tape_catalogue, submit_stagein, api):
    # given: a slow tape, so the request is still staging when aborted
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    (spec,) = tape_catalogue(files=20)
    request_id = submit_stagein(spec)
    processing = wait_for(
        lambda: Processing.objects.filter(request_id=request_id).exclude(external_id="").first(),
        what="rule created",
    )

    # when
    response = api.post(f"/api/v1/requests/{request_id}/abort/")

    # then
    assert response.status_code == 200, response.content
    finished(request_id, RequestStatus.CANCELLED)
    rule = SimRule.objects.get(pk=processing.external_id)
    assert rule.deleted_at is not None
    assert not SimLock.objects.filter(rule=rule, event_at__gt=current_clock().horizon()).exists()
    assert not announced_files(request_id)


def test_it_joins_a_duplicate_request_to_the_live_transform(celery_worker, settings, tape_catalogue, submit_stagein):
    # given: a request still staging
    settings.IDDS_TAPE_TIME_SCALE = 30.0
    (spec,) = tape_catalogue(files=10)
    first = submit_stagein(spec)
    wait_for(lambda: Transform.objects.filter(request_id=first).exists(), what="first transform")

    # when
    second = submit_stagein(spec)

    # then
    finished(first)
    finished(second)
    assert Transform.objects.count() == 1
    assert list(Transform.objects.get().joined_requests.values_list("pk", flat=True)) == [second]
    assert SimRule.objects.count() == 1
    assert len(announced_files(first)) == 10
    assert Content.objects.filter(collection__relation_type=CollectionRelationType.OUTPUT).count() == 10
    assert Content.objects.filter(status=ContentStatus.AVAILABLE).count() == 10


def test_it_adopts_the_rule_the_workload_system_created(celery_worker, settings, tape_catalogue, api):
    # given: a rule made outside the service, as JEDI does before asking iDDS to watch it
    settings.IDDS_TAPE_TIME_SCALE = 0.0
    (spec,) = tape_catalogue(files=12)
    (rule_id,) = SimulatorBackend().create_rule(
        RuleRequest(dids=((spec.scope, spec.name),), rse_expression="JEDI_DISK")
    )

    # when
    response = api.post(
        "/api/v1/requests/",
        {
            "request_type": 2,
            "scope": spec.scope,
            "name": spec.name,
            "request_metadata": {"workload_id": 99, "rule_id": rule_id},
        },
        format="json",
    )

    # then
    assert response.status_code == 201, response.content
    request_id = response.json()["request_id"]
    finished(request_id)
    assert SimRule.objects.count() == 1
    assert Processing.objects.get(request_id=request_id).external_id == rule_id
    assert len(announced_files(request_id)) == 12
