"""Django admin: every model's pages render for staff, and the actions go through the services."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin

from requests_app.models import Event, Message, Request
from requests_app.models.statuses import MessageStatus, RequestStatus
from tests.factories import ContentFactory, MessageFactory, ProcessingFactory, RequestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    return client


def test_every_core_model_is_registered():
    for model in apps.get_app_config("requests_app").get_models():
        assert model in admin.site._registry, model


@pytest.mark.parametrize("model", ["request", "transform", "processing", "collection", "content", "message", "event"])
def test_changelists_and_change_pages_render(staff_client, model):
    # given: one row of everything
    processing = ProcessingFactory()
    ContentFactory(collection__transform=processing.transform, collection__request=processing.request)
    MessageFactory(transform=processing.transform, request=processing.request)
    Event.objects.create(
        entity="request",
        entity_id=processing.request_id,
        request=processing.request,
        old_status=RequestStatus.NEW,
        new_status=RequestStatus.TRANSFORMING,
    )
    row = apps.get_model("requests_app", model).objects.order_by("pk").first()

    # when
    searched = staff_client.get(f"/admin/requests_app/{model}/", {"q": str(row.pk)})
    listing = staff_client.get(f"/admin/requests_app/{model}/")
    change = staff_client.get(f"/admin/requests_app/{model}/{row.pk}/change/")

    # then: the list shows the row, and its change page renders with the row's id on it
    assert searched.status_code == 200
    assert listing.status_code == 200
    assert row.pk in [obj.pk for obj in listing.context["cl"].result_list]
    assert change.status_code == 200
    assert change.context["original"].pk == row.pk


def test_the_abort_action_aborts_through_the_service_and_reports_refusals(staff_client):
    live = RequestFactory()
    done = RequestFactory(status=RequestStatus.FINISHED)

    response = staff_client.post(
        "/admin/requests_app/request/",
        {"action": "abort_requests", "_selected_action": [live.pk, done.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert Request.objects.get(pk=live.pk).status == RequestStatus.TO_CANCEL
    assert Request.objects.get(pk=done.pk).status == RequestStatus.FINISHED
    shown = [str(m) for m in response.context["messages"]]
    assert shown[0] == "abort requested: 1 request(s)"
    assert shown[1].startswith(f"refused: {done.pk}: cannot abort request {done.pk}: it is already Finished")


def test_the_requeue_action_gives_failed_messages_another_go(staff_client):
    failed = MessageFactory(status=MessageStatus.FAILED, attempts=3)

    staff_client.post("/admin/requests_app/message/", {"action": "requeue_messages", "_selected_action": [failed.pk]})

    assert Message.objects.get(pk=failed.pk).status == MessageStatus.NEW
