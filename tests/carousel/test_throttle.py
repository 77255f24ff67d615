"""The carousel throttle: per-source and per-destination caps, first come first served."""

from __future__ import annotations

import pytest

from carousel.models import ThrottleReservation
from carousel.throttle import ThrottleLimits, admits, throttle_admit, throttled_request_ids
from requests_app.models import Request
from requests_app.models.statuses import RequestStatus, RequestType
from tests.factories import RequestFactory

pytestmark = pytest.mark.django_db
LIMITS = ThrottleLimits(max_files_per_source=100, max_staging_ratio=0.5, max_files_per_destination=150)


def request_id(status: int = RequestStatus.NEW) -> int:
    return RequestFactory(request_type=RequestType.STAGE_IN, status=status, request_metadata={}).pk


def admit(pk: int, files: int, source: str = "TAPE-A", destination: str = "DISK") -> str | None:
    return throttle_admit(request_id=pk, files=files, source=source, destination=destination, limits=LIMITS)


def test_it_admits_while_the_window_has_room_and_at_most_half_is_in_flight():
    assert admits(LIMITS, inflight=0, files=500)
    assert admits(LIMITS, inflight=50, files=50)
    assert not admits(LIMITS, inflight=50, files=51)
    assert not admits(LIMITS, inflight=51, files=1)


def test_it_holds_a_request_beyond_the_source_cap_and_names_the_source():
    # given
    first = request_id()
    assert admit(first, 60) is None

    # when
    reason = admit(request_id(), 60)

    # then
    assert "source TAPE-A has 60 files queued or staging" in reason
    assert admit(request_id(), 10, source="TAPE-B") is None


def test_it_serves_a_source_first_come_first_served():
    # given: a big request waiting behind a running one
    assert admit(request_id(), 60) is None
    big = request_id()
    assert admit(big, 90) is not None

    # when: a small one arrives that would fit
    reason = admit(request_id(), 5)

    # then
    assert reason == "waiting behind 1 older request(s) for source TAPE-A"
    assert throttled_request_ids() == [big]


def test_it_caps_the_destination_across_sources():
    # given
    assert admit(request_id(), 100, source="TAPE-A") is None

    # when
    reason = admit(request_id(), 60, source="TAPE-B")

    # then
    assert "destination DISK has 100 files staging" in reason


def test_room_at_a_source_is_offered_to_its_head_and_to_heads_waiting_on_the_same_destination():
    # given: TAPE-A and TAPE-B full, TAPE-C's head held by the destination cap, TAPE-D's by another
    assert admit(request_id(), 60, source="TAPE-A") is None
    on_a = request_id()
    assert "source TAPE-A" in admit(on_a, 60, source="TAPE-A")
    assert admit(request_id(), 60, source="TAPE-B") is None
    on_b = request_id()
    assert "source TAPE-B" in admit(on_b, 60, source="TAPE-B")
    on_c = request_id()
    assert "destination DISK" in admit(on_c, 40, source="TAPE-C")
    assert admit(request_id(), 100, source="TAPE-D", destination="OTHER") is None
    on_d = request_id()
    assert "destination OTHER" in admit(on_d, 60, source="TAPE-E", destination="OTHER")

    # when: room opens at TAPE-A (towards DISK) / then its head and the head waiting on DISK
    assert throttled_request_ids(source="TAPE-A", destination="DISK") == [on_a, on_c]
    assert throttled_request_ids() == [on_a, on_b, on_c, on_d]
    assert ThrottleReservation.objects.get(request_id=on_b).waiting_on == "source"


def test_it_forgets_requests_that_ended_and_frees_their_room():
    # given
    running = request_id()
    assert admit(running, 60) is None
    waiting = request_id()
    assert admit(waiting, 60) is not None

    # when
    Request.objects.filter(pk=running).update(status=RequestStatus.CANCELLED)

    # then
    assert admit(waiting, 60) is None
    assert ThrottleReservation.objects.get(request_id=waiting).admitted
