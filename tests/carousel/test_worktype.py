"""StageInWorkType hooks called directly: idempotent submit, dedup key, plan of a large dataset."""

from __future__ import annotations

import pytest

from carousel.models import SimRule
from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create
from carousel.worktype import StageInWorkType
from requests_app.models.statuses import CollectionRelationType, RequestType
from tests.factories import ProcessingFactory, RequestFactory, TransformFactory

pytestmark = pytest.mark.django_db


def stagein_processing(name: str, **metadata):
    request = RequestFactory(
        request_type=RequestType.STAGE_IN,
        scope="sim",
        name=name,
        request_metadata={
            "scope": "sim",
            "name": name,
            "workload_id": 7,
            "dest_rse": "SIM_DATADISK",
            "max_waiting_time": 60,
            "max_extra_rules": 1,
            **metadata,
        },
    )
    transform = TransformFactory(request=request, transform_type=RequestType.STAGE_IN)
    return ProcessingFactory(transform=transform, request=request)


def test_it_adopts_its_own_rule_when_submit_runs_twice(settings):
    # given: a worker died after creating the rule, before recording it
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    catalogue_create([DatasetSpec("sim", "ds.submit", 5, 5 * 10**9)], config=TapeConfig(libraries=2))
    processing = stagein_processing("ds.submit")

    # when
    first = StageInWorkType().submit(processing)
    second = StageInWorkType().submit(processing)

    # then
    assert first.external_id == second.external_id
    assert SimRule.objects.get().comment == f"idds processing {processing.pk}"


def test_it_keys_duplicates_by_dataset_and_workload():
    # given
    processing = stagein_processing("ds.key")

    # when
    key = StageInWorkType().dedup_key(processing.request)

    # then
    assert key == "stagein:sim:ds.key:7"


def test_it_plans_one_output_content_per_file_of_a_large_dataset(settings):
    # given
    catalogue_create([DatasetSpec("sim", "ds.big", 100_000, 100_000 * 10**9)], config=TapeConfig(libraries=2))
    processing = stagein_processing("ds.big")

    # when
    plan = StageInWorkType().plan(processing.transform)

    # then
    inputs, outputs = plan.collections
    assert (inputs.relation, outputs.relation) == (CollectionRelationType.INPUT, CollectionRelationType.OUTPUT)
    assert len(outputs.contents) == 100_000
    assert inputs.metadata["files"] == 100_000
    assert plan.metadata["source"] in {"SIM-1_TAPE", "SIM-2_TAPE"}
