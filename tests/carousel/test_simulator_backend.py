"""The simulated tape system behind the staging-backend interface (state in PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F

from carousel.backends.base import RuleRequest
from carousel.backends.simulator import SimulatorBackend
from carousel.models import SimClock, SimDataset, SimFile, SimLock, SimRule, Tape, TapeDrive, TapeLibrary
from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create
from carousel.tape.clock import FAR_FUTURE
from requests_app.errors import PermanentError

pytestmark = pytest.mark.django_db
DATASET = ("sim", "ds.backend")


@pytest.fixture
def backend(settings) -> SimulatorBackend:
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    return SimulatorBackend()


def make_catalogue(files: int = 12, stuck_fraction: float = 0.0) -> None:
    config = TapeConfig(libraries=2, drives_per_library=1, stuck_fraction=stuck_fraction)
    catalogue_create([DatasetSpec(*DATASET, files, files * 2_000_000_000)], config=config, seed=11)


def advance(seconds: float) -> None:
    """Move the simulated clock forward without waiting."""
    SimClock.objects.filter(pk=1).update(sim_origin=F("sim_origin") + timedelta(seconds=seconds))


def rule_for(backend: SimulatorBackend, comment: str = "idds processing 1", **extra) -> str:
    request = RuleRequest(dids=(DATASET,), rse_expression="SIM_DATADISK", comment=comment, **extra)
    return backend.create_rule(request)[0]


def test_it_lists_a_dataset_with_its_source_and_refuses_an_unknown_one(backend):
    # given
    make_catalogue(files=5)

    # when
    files = backend.list_files(*DATASET)

    # then
    assert [f.name for f in files] == [f"ds.backend._{n:06d}.1" for n in range(1, 6)]
    assert {f.source for f in files} == {SimDataset.objects.get().library.name}
    assert backend.dataset_summary(*DATASET).files == 5
    with pytest.raises(PermanentError, match="sim:nope not found"):
        backend.list_files("sim", "nope")


def test_it_adopts_the_rule_of_a_repeated_submit_instead_of_staging_twice(backend):
    # given
    make_catalogue()
    first = rule_for(backend)

    # when
    again = rule_for(backend)

    # then
    assert again == first
    assert SimRule.objects.count() == 1
    assert SimLock.objects.count() == 12


def test_it_reports_locks_ok_once_their_landing_time_has_passed(backend):
    # given
    make_catalogue()
    rule_id = rule_for(backend)
    assert {lock.state for lock in backend.list_locks(rule_id)} == {"REPLICATING"}
    assert list(backend.list_locks(rule_id, since=backend.now())) == []

    # when: half the reads have happened
    before = backend.now()
    events = sorted(SimLock.objects.values_list("event_at", flat=True))
    advance((events[5] + (events[6] - events[5]) / 2 - before).total_seconds())
    changed = list(backend.list_locks(rule_id, since=before))

    # then
    assert len(changed) == 6
    assert all(lock.state == "OK" and before < lock.updated_at <= backend.now() for lock in changed)
    assert [lock.updated_at for lock in changed] == sorted(lock.updated_at for lock in changed)
    info = backend.get_rule(rule_id)
    assert (info.state, info.locks_ok_cnt, info.locks_replicating_cnt) == (
        "REPLICATING",
        len(changed),
        12 - len(changed),
    )
    upcoming = backend.next_change_at([rule_id], after=changed[-1].updated_at)
    assert upcoming > backend.now()
    assert 0 < backend.seconds_until(upcoming) < 10

    # when: everything has landed
    advance(86_400)

    # then
    assert backend.get_rule(rule_id).state == "OK"
    assert backend.next_change_at([rule_id], after=backend.now()) == FAR_FUTURE


def test_it_reads_a_stuck_file_from_its_second_copy_when_the_first_source_is_excluded(backend):
    # given: every file is stuck on its first copy
    make_catalogue(files=4, stuck_fraction=1.0)
    rule_id = rule_for(backend)
    advance(86_400)
    stuck = [lock for lock in backend.list_locks(rule_id) if lock.state == "STUCK"]
    assert len(stuck) == 4
    assert backend.get_rule(rule_id).state == "STUCK"
    source = backend.source_of(stuck[0])

    # when
    restage = backend.create_rule(
        RuleRequest(
            dids=tuple(("sim", lock.name) for lock in stuck),
            rse_expression="SIM_DATADISK",
            source_replica_expression=f"*\\{source}",
            comment="idds processing 1 restage 1",
        )
    )
    advance(86_400)

    # then: one rule per file, each read from the other library
    assert len(restage) == 4
    locks = list(backend.list_locks_many(restage))
    assert {lock.state for lock in locks} == {"OK"}
    assert {lock.source for lock in locks} == {"SIM-1_TAPE", "SIM-2_TAPE"} - {source}


def test_it_refuses_a_rule_no_replica_can_serve():
    # given
    make_catalogue(files=2)
    library = SimDataset.objects.get().library.name
    copy = SimDataset.objects.get().copy_library.name

    # when / then
    with pytest.raises(PermanentError, match="no replica"):
        SimulatorBackend().create_rule(
            RuleRequest(dids=(DATASET,), rse_expression="X", source_replica_expression=f"*\\{library}|{copy}")
        )


def test_it_cancels_the_pending_reads_of_a_deleted_rule(backend):
    # given
    make_catalogue()
    rule_id = rule_for(backend)

    # when
    backend.delete_rule(rule_id)
    backend.delete_rule(rule_id)

    # then
    assert SimLock.objects.filter(rule_id=rule_id).count() == 0
    with pytest.raises(PermanentError, match="not found"):
        backend.get_rule(rule_id)


def test_it_lands_everything_at_once_with_time_scale_zero(settings):
    # given
    settings.IDDS_TAPE_TIME_SCALE = 0.0
    make_catalogue(files=6, stuck_fraction=0.5)
    backend = SimulatorBackend()

    # when
    rule_id = rule_for(backend)

    # then
    states = [lock.state for lock in backend.list_locks(rule_id)]
    assert "REPLICATING" not in states
    assert len(states) == 6
    assert backend.now() == FAR_FUTURE


def test_it_schedules_the_same_landings_for_the_same_seed(backend):
    # given
    def landings() -> dict[str, float]:
        make_catalogue(files=20, stuck_fraction=0.2)
        rule_id = rule_for(backend)
        created = SimRule.objects.get(pk=rule_id).created_at
        result = {
            name: round((event_at - created).total_seconds(), 3)
            for name, event_at in SimLock.objects.filter(rule_id=rule_id).values_list("file__name", "event_at")
        }
        result["stuck"] = SimLock.objects.filter(fails=True).count()
        for model in (SimLock, SimRule, SimFile, SimDataset, TapeDrive, Tape, TapeLibrary, SimClock):
            model.objects.all().delete()
        return result

    # when
    first, second = landings(), landings()

    # then
    assert first == second
    assert first["stuck"] > 0
