"""Request lifetime: expired_at set at submission, overdue live requests expired by the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from carousel.models import SimRule
from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create
from idds_site.celery import app as celery_app
from requests_app.models import Event, Message, Processing, Request, Transform
from requests_app.models.statuses import RequestStatus
from requests_app.services.lifetime import requests_expire_overdue
from tests.carousel.conftest import FILE_BYTES, stagein_body
from tests.conftest import wait_for
from tests.factories import RequestFactory

URL = "/api/v1/requests/"
PAST = timedelta(minutes=1)


def staging_request(api, settings) -> tuple[int, Processing]:
    """A stage-in request on a slow simulated tape, submitted through the API and staging."""
    settings.IDDS_TAPE_TIME_SCALE = 1.0
    spec = DatasetSpec("sim", "lifetime.0", 20, 20 * FILE_BYTES)
    catalogue_create([spec], config=TapeConfig(libraries=2, drives_per_library=1), seed=7)
    response = api.post(URL, stagein_body(spec), format="json")
    assert response.status_code == 201, response.content
    request_id = response.json()["request_id"]
    processing = wait_for(
        lambda: Processing.objects.filter(request_id=request_id).exclude(external_id="").first(),
        what="staging rule created",
    )
    return request_id, processing


def make_overdue(request_id: int) -> None:
    Request.objects.filter(pk=request_id).update(expired_at=timezone.now() - PAST)


def expired(request_id: int) -> Request:
    return wait_for(
        lambda: Request.objects.filter(pk=request_id, status=RequestStatus.EXPIRED).first(),
        what=f"request {request_id} Expired",
    )


def test_it_expires_an_overdue_request_stops_its_staging_and_announces_the_collection(celery_worker, settings, api):
    # given: a request still staging, past its lifetime
    request_id, processing = staging_request(api, settings)
    make_overdue(request_id)

    # when
    swept = requests_expire_overdue()

    # then: Expired, its rule deleted (outside work cancelled as abort does) and a message written
    assert swept == (1, False)
    expired(request_id)
    assert SimRule.objects.get(pk=processing.external_id).deleted_at is not None
    assert Processing.objects.get(pk=processing.pk).get_status_display() == "Cancel"
    message = wait_for(
        lambda: Message.objects.filter(request_id=request_id, msg_type="collection_stagein").first(),
        what="collection message",
    )
    assert message.body["relation_type"] == "output"
    # Consumers act only on "Closed" (docs/messages.md); how the work ended is in ``error``.
    assert [c["status"] for c in message.body["collections"]] == ["Closed"]
    assert message.body["error"]["status"] == "Expired"
    moves = list(Event.objects.filter(entity="request", entity_id=request_id).values_list("new_status", "reason"))
    assert (RequestStatus.TO_EXPIRE, "lifetime of 30 days over") in moves
    assert moves[-1][0] == RequestStatus.EXPIRED
    assert api.get(f"{URL}{request_id}/").json()["status"] == "Expired"


def test_a_suspended_request_expires_too(celery_worker, settings, api):
    # given
    request_id, processing = staging_request(api, settings)
    assert api.post(f"{URL}{request_id}/suspend/").status_code == 200
    make_overdue(request_id)

    # when
    swept = requests_expire_overdue()

    # then
    assert swept == (1, False)
    expired(request_id)
    assert SimRule.objects.get(pk=processing.external_id).deleted_at is not None


def test_an_expired_request_hands_its_shared_staging_to_a_live_duplicate(celery_worker, settings, api):
    # given: a second request for the same dataset joined the first one's transform
    first, processing = staging_request(api, settings)
    response = api.post(URL, stagein_body(DatasetSpec("sim", "lifetime.0", 20, 20 * FILE_BYTES)), format="json")
    assert response.status_code == 201, response.content
    second = response.json()["request_id"]
    wait_for(lambda: Transform.objects.filter(joined_requests=second).exists(), what="second request joined")
    make_overdue(first)

    # when
    requests_expire_overdue()

    # then: the first expires, the staging goes on for the second
    expired(first)
    transform = Transform.objects.get(pk=processing.transform_id)
    assert transform.request_id == second
    assert transform.status == RequestStatus.TRANSFORMING
    assert SimRule.objects.get(pk=processing.external_id).deleted_at is None
    assert Request.objects.get(pk=second).status == RequestStatus.TRANSFORMING


@pytest.mark.django_db
def test_it_leaves_ended_stopping_and_unexpired_requests_alone():
    # given
    overdue = timezone.now() - PAST
    finished = RequestFactory(status=RequestStatus.FINISHED, expired_at=overdue)
    cancelling = RequestFactory(status=RequestStatus.TO_CANCEL, expired_at=overdue)
    young = RequestFactory(status=RequestStatus.TRANSFORMING, expired_at=timezone.now() + timedelta(days=1))

    # when
    swept = requests_expire_overdue()

    # then
    assert swept == (0, False)
    statuses = dict(Request.objects.values_list("pk", "status"))
    assert statuses == {
        finished.pk: RequestStatus.FINISHED,
        cancelling.pk: RequestStatus.TO_CANCEL,
        young.pk: RequestStatus.TRANSFORMING,
    }
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_it_expires_in_bounded_batches_oldest_first():
    # given
    now = timezone.now()
    requests = [
        RequestFactory(status=RequestStatus.TRANSFORMING, expired_at=now - timedelta(hours=h)) for h in (1, 3, 2)
    ]

    # when
    first = requests_expire_overdue(limit=2)
    second = requests_expire_overdue(limit=2)

    # then
    assert first == (2, True)
    assert second == (1, False)
    order = list(
        Event.objects.filter(new_status=RequestStatus.TO_EXPIRE).order_by("id").values_list("entity_id", flat=True)
    )
    assert order == [requests[1].pk, requests[2].pk, requests[0].pk]


@pytest.mark.django_db
def test_expired_at_is_set_at_submission_and_shown_by_the_api(api):
    # when
    response = api.post(URL, {"request_type": 99, "lifetime": 7, "request_metadata": {"files": 1}}, format="json")

    # then
    assert response.status_code == 201, response.content
    shown = api.get(f"{URL}{response.json()['request_id']}/").json()
    lifetime = parse_datetime(shown["expired_at"]) - parse_datetime(shown["created_at"])
    assert abs(lifetime - timedelta(days=7)) < timedelta(seconds=5)


def test_beat_runs_the_lifetime_sweep():
    entries = [entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()]

    assert "idds.watchdog.requests_expire_overdue" in entries
    assert "idds.watchdog.requests_expire_overdue" in celery_app.tasks
