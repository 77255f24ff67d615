"""/healthz, /metrics, the health page, and the work-type pages' escaping."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from carousel.models import ThrottleReservation
from monitor.heartbeat import REDIS_KEY, beat_record, broker_redis

from .data import HOSTILE, campaign_request


@pytest.fixture
def no_beat():
    client = broker_redis()
    assert client is not None, "the tests run with a Redis broker"
    client.delete(REDIS_KEY)
    yield
    client.delete(REDIS_KEY)


def test_healthz_is_503_without_a_recent_beat(client: Client, db, no_beat):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True
    assert body["beat"]["ok"] is False


def test_healthz_is_200_with_a_recent_beat(client: Client, db, no_beat):
    beat_record()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_healthz_is_503_with_a_stale_beat(client: Client, db, no_beat, settings):
    beat_record(time.time() - settings.IDDS_MONITOR_BEAT_MAX_AGE - 5)
    assert client.get("/healthz").status_code == 503


def test_healthz_stays_public_when_pages_need_login(client: Client, db, no_beat, settings):
    settings.IDDS_MONITOR_REQUIRE_LOGIN = True
    beat_record()
    assert client.get("/healthz").status_code == 200


def test_beat_heartbeat_is_written_when_a_worker_runs_a_beat_task(celery_worker, no_beat):
    from idds_site.celery import app

    app.send_task("idds.conductor.messages_deliver", queue="conductor")
    from tests.conftest import wait_for

    wait_for(lambda: broker_redis().get(REDIS_KEY), timeout=30, what="the beat heartbeat")


def test_metrics_exposes_the_service_figures(client: Client, user):
    campaign_request(owner=user, name="m.set")
    text = client.get("/metrics").content.decode()
    assert 'idds_requests{status="Transforming"} 1.0' in text
    assert "idds_files_released 10.0" in text
    assert "idds_outbox_backlog 1.0" in text
    assert "idds_queue_length" in text


def test_health_page_lists_queues(client: Client, db):
    page = client.get("/health/", {"format": "json"}).json()
    assert "conductor" in page["queues"]
    assert page["outbox"]["backlog"] == 0


def test_health_page_gives_its_verdict_in_a_badge_of_its_own(client: Client, db, no_beat):
    # given no beat: unhealthy
    unhealthy = client.get("/health/").content.decode()

    # when the beat is recent
    beat_record()
    healthy = client.get("/health/").content.decode()

    # then each verdict reads as what it is, not as a request status
    assert ">Unhealthy</span>" in unhealthy
    assert ">Healthy</span>" not in unhealthy
    assert ">Healthy</span>" in healthy
    assert ">Unhealthy</span>" not in healthy
    assert ">Finished</span>" not in healthy + unhealthy


def test_carousel_escapes_sources_and_counts_throttled(client: Client, user):
    request = campaign_request(owner=user, name=HOSTILE)
    ThrottleReservation.objects.create(
        request_id=request.pk, source=HOSTILE, destination="DISK", files=7, waiting_on="source"
    )
    body = client.get("/carousel/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    data = client.get("/carousel/", {"format": "json"}).json()
    assert data["sources"][0]["files_queued"] == 7
    assert data["throttled"][0]["why"] == "the source tape RSE has no room"
