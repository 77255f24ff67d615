"""The synthetic catalogue: the reference campaign's exact totals, determinism, tape layout."""

from __future__ import annotations

import pytest

from carousel.models import SimDataset, SimFile, Tape
from carousel.tape.catalogue import (
    REFERENCE_BYTES,
    REFERENCE_FILES,
    REFERENCE_NAMED,
    TapeConfig,
    catalogue_create,
    lay_out,
    reference_campaign,
    scaled_campaign,
    synthetic_campaign,
)


def test_it_reproduces_the_reference_campaign_totals_exactly():
    # when
    specs = reference_campaign()

    # then
    assert len(specs) == 63
    assert sum(spec.files for spec in specs) == REFERENCE_FILES == 426_331
    assert sum(spec.bytes for spec in specs) == REFERENCE_BYTES == 932_290_670_456_064
    named = {spec.name: spec.files for spec in specs if spec.scope == "data15_13tev"}
    assert named == {f"data15_13tev.{run}.physics_main.daq.raw": files for run, files in REFERENCE_NAMED}
    assert len({spec.name for spec in specs}) == 63


def test_it_draws_the_same_campaign_for_the_same_seed_and_another_for_another_seed():
    assert reference_campaign(seed=1) == reference_campaign(seed=1)
    assert reference_campaign(seed=1) != reference_campaign(seed=2)


def test_it_scales_a_campaign_down_keeping_every_dataset():
    # when
    specs = scaled_campaign(reference_campaign(), files=5000, tag="demo")

    # then
    assert len(specs) == 63
    assert 4900 <= sum(spec.files for spec in specs) <= 5100
    assert all(spec.files >= 1 and spec.name.endswith(".demo") for spec in specs)


def test_it_lays_datasets_out_over_shared_cartridges_with_a_copy_on_another_library():
    # given
    specs = synthetic_campaign(datasets=6, files=6000)
    config = TapeConfig(libraries=2, tape_capacity=500 * 2_186_776_637)

    # when
    layout = lay_out(specs, config, seed=3)

    # then: datasets span several cartridges, cartridges hold several datasets
    tapes_of = {}
    datasets_on = {}
    for laid in layout.files:
        tapes_of.setdefault(laid.dataset, set()).add(laid.tape)
        datasets_on.setdefault(laid.tape, set()).add(laid.dataset)
        assert layout.tapes[laid.tape][0] != layout.tapes[laid.copy_tape][0]
    assert max(len(tapes) for tapes in tapes_of.values()) > 1
    assert max(len(datasets) for datasets in datasets_on.values()) > 1


@pytest.mark.django_db
def test_it_writes_the_catalogue_and_keeps_existing_datasets_on_a_second_run():
    # given
    specs = synthetic_campaign(datasets=3, files=300, prefix="cat")
    catalogue_create(specs, config=TapeConfig(libraries=2, drives_per_library=1))

    # when
    rows = catalogue_create(specs, config=TapeConfig(libraries=2, drives_per_library=1))

    # then
    assert [row.total_files for row in rows] == [100, 100, 100]
    assert SimDataset.objects.count() == 3
    assert SimFile.objects.count() == 300
    assert Tape.objects.filter(library__name="SIM-1_TAPE").exists()


@pytest.mark.django_db
def test_it_refuses_a_dataset_that_exists_with_other_files():
    # given
    catalogue_create(synthetic_campaign(datasets=1, files=10, prefix="x"))

    # when / then
    with pytest.raises(ValueError, match="exists with 10 files, not 20"):
        catalogue_create(synthetic_campaign(datasets=1, files=20, prefix="x"))
