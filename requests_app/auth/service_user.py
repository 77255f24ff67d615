"""The user that owns requests made by management commands when no ``--owner`` is given."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

#: Username of the service user; created on demand with an unusable password (it never logs in).
SERVICE_USERNAME = "idds-service"


def service_user():
    """The service user, created on first use."""
    users = get_user_model().objects
    user = users.filter(username=SERVICE_USERNAME).first()
    if user is not None:
        return user
    try:
        with transaction.atomic():
            # No password given: Django stores an unusable one.
            user = users.create_user(username=SERVICE_USERNAME)
    except IntegrityError:
        # Two commands started at once: the other one created it.
        user = users.get(username=SERVICE_USERNAME)
    return user


def command_owner(username: str | None):
    """The owner a command's requests get: ``--owner USERNAME`` (which must exist) or the service user."""
    if not username:
        return service_user()
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user {username!r}; create one with issue_token, or leave --owner out")
    return user
