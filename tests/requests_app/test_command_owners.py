"""Requests made by management commands have an owner: ``--owner`` or the service user."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from requests_app.auth.service_user import SERVICE_USERNAME
from requests_app.models import Request

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_carousel_campaign_requests_belong_to_the_service_user_or_the_given_owner(user):
    # when
    run("carousel_campaign", "--datasets", "2", "--files", "20", "--campaign", "c1", "--no-wait")
    run("carousel_campaign", "--datasets", "1", "--files", "10", "--campaign", "c2", "--no-wait", "--owner", "alice")

    # then
    owners = sorted(Request.objects.values_list("owner__username", flat=True))
    assert owners == ["alice", SERVICE_USERNAME, SERVICE_USERNAME]


def test_an_unknown_owner_is_refused_before_anything_is_made():
    with pytest.raises(CommandError, match="no user 'nobody'"):
        run("carousel_campaign", "--datasets", "1", "--files", "10", "--no-wait", "--owner", "nobody")

    assert not Request.objects.exists()
