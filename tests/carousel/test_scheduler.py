"""Drive scheduling of the simulated tape system (pure functions, no database)."""

from __future__ import annotations

from carousel.tape.scheduler import DriveState, ReadItem, Timing, schedule_reads, seek_seconds

TIMING = Timing(mount_seconds=90.0, max_seek_seconds=120.0, throughput_bps=100.0)
CAPACITY = 1_000_000


def run(items, drives, start=0.0):
    tapes = {item.tape for item in items}
    return schedule_reads(
        items,
        start=start,
        drives=drives,
        tape_library=dict.fromkeys(tapes, 1),
        tape_capacity=dict.fromkeys(tapes, CAPACITY),
        timing={1: TIMING},
    )


def test_it_reads_a_cartridge_in_tape_order_whatever_the_request_order():
    # given: three files of one tape asked for out of order
    items = [ReadItem(1, 7, 2000, 1000), ReadItem(2, 7, 0, 1000), ReadItem(3, 7, 1000, 1000)]

    # when
    events = run(items, [DriveState(1, 1, 0.0)])

    # then: mount, then back-to-back reads of 10 s each with no positioning between them
    assert events[2] < events[3] < events[1]
    assert events[2] == 90.0 + 10.0
    assert events[3] - events[2] == events[1] - events[3] == 10.0


def test_it_queues_a_second_cartridge_behind_the_busy_drive():
    # given: one drive, two tapes
    items = [ReadItem(1, 7, 0, 1000), ReadItem(2, 8, 0, 1000)]
    drive = DriveState(1, 1, 0.0)

    # when
    events = run(items, [drive])

    # then: the second tape waits for the first, then costs its own mount
    assert events[2] == events[1] + 90.0 + 10.0
    assert drive.free_at == events[2]
    assert drive.tape == 8


def test_it_spreads_cartridges_over_free_drives_and_reuses_a_mounted_one():
    # given: two drives, one of which holds tape 8 already
    items = [ReadItem(1, 7, 0, 1000), ReadItem(2, 8, 0, 1000)]
    drives = [DriveState(1, 1, 0.0), DriveState(2, 1, 50.0, tape=8, head=0)]

    # when
    events = run(items, drives)

    # then: tape 8 needs no mount on the drive holding it; tape 7 goes to the idle drive
    assert events[2] == 50.0 + 10.0
    assert events[1] == 90.0 + 10.0


def test_it_costs_positioning_in_proportion_to_the_distance_capped_at_the_maximum():
    assert seek_seconds(0, 0, CAPACITY, TIMING) == 0.0
    assert seek_seconds(0, CAPACITY // 2, CAPACITY, TIMING) == 4.0 + 60.0
    assert seek_seconds(0, CAPACITY, CAPACITY, TIMING) == 120.0


def test_it_reports_a_failing_file_at_the_time_the_drive_gave_up_on_it():
    # given
    items = [ReadItem(1, 7, 0, 1000, fails=True), ReadItem(2, 7, 1000, 1000)]

    # when
    events = run(items, [DriveState(1, 1, 0.0)], start=5.0)

    # then
    assert events == {1: 105.0, 2: 115.0}
