"""The owner's actions from the request page: through the services, with CSRF, refused to others."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from requests_app.models import Event
from requests_app.models.statuses import RequestStatus

from .data import campaign_request


@pytest.fixture
def running(db, user):
    return campaign_request(owner=user, name="owned.set")


def _logged_in(username: str, password: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=username, password=password)
    return client


def test_owner_sees_the_buttons_and_suspends(running):
    client = _logged_in("alice", "pw-alice-123")
    page = client.get(f"/requests/{running.pk}/").content.decode()
    assert 'data-action="suspend"' in page
    response = client.post(f"/requests/{running.pk}/suspend/")
    assert response.status_code == 302
    running.refresh_from_db()
    assert running.status == RequestStatus.SUSPENDED
    # The same service as the API: the transition is recorded with the actor.
    assert Event.objects.filter(request=running, new_status=RequestStatus.SUSPENDED, actor="alice").exists()


def test_another_user_is_refused(running, other_user):
    client = _logged_in("bob", "pw-bob-123")
    assert 'data-action="abort"' not in client.get(f"/requests/{running.pk}/").content.decode()
    response = client.post(f"/requests/{running.pk}/abort/")
    assert response.status_code == 403
    running.refresh_from_db()
    assert running.status == RequestStatus.TRANSFORMING


def test_anonymous_is_refused(client: Client, running):
    assert client.post(f"/requests/{running.pk}/abort/").status_code == 403
    running.refresh_from_db()
    assert running.status == RequestStatus.TRANSFORMING


def test_staff_may_act(running, staff_user):
    client = _logged_in("root", "pw-root-123")
    assert client.post(f"/requests/{running.pk}/suspend/").status_code == 302
    running.refresh_from_db()
    assert running.status == RequestStatus.SUSPENDED


def test_csrf_token_is_required(running):
    client = _logged_in("alice", "pw-alice-123", csrf=True)
    assert client.post(f"/requests/{running.pk}/suspend/").status_code == 403
    page = client.get(f"/requests/{running.pk}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(f"/requests/{running.pk}/suspend/", {"csrfmiddlewaretoken": token}).status_code == 302
    running.refresh_from_db()
    assert running.status == RequestStatus.SUSPENDED


def test_refused_transition_is_shown_not_a_500(user):
    finished = campaign_request(owner=user, name="done.set", status=RequestStatus.FINISHED)
    client = _logged_in("alice", "pw-alice-123")
    response = client.post(f"/requests/{finished.pk}/retry/", follow=True)
    assert response.status_code == 200
    assert "only Failed or SubFinished requests can be retried" in response.content.decode()


def test_unknown_action_or_get_is_refused(running):
    client = _logged_in("alice", "pw-alice-123")
    assert client.post(f"/requests/{running.pk}/explode/").status_code == 404
    assert client.get(f"/requests/{running.pk}/abort/").status_code == 405
