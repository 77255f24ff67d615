"""Who may change a request: its owner, staff, or a worker token scoped to it."""

from __future__ import annotations

from dataclasses import dataclass

from requests_app.models import ApiToken, Request


@dataclass(frozen=True)
class Principal:
    """The caller as leases record it: a user, and the worker token used (None for the user's own tokens)."""

    user_id: int
    worker_token_id: int | None = None


def worker_token_of(auth: object) -> ApiToken | None:
    """The study-scoped token a request was authenticated with, if any (``request.auth``)."""
    if isinstance(auth, ApiToken) and auth.study_id is not None:
        return auth
    return None


def principal_of(user, auth: object) -> Principal:
    """The principal of an authenticated API call."""
    token = worker_token_of(auth)
    return Principal(user_id=user.pk, worker_token_id=token.pk if token else None)


def may_change_request(user, auth: object, request: Request) -> bool:
    """Owner or staff; a worker token only for its own study (whoever it authenticates as)."""
    token = worker_token_of(auth)
    if token is not None:
        return token.study_id == request.pk
    return bool(user.is_staff or (request.owner_id is not None and request.owner_id == user.pk))


def may_manage_worker_tokens(user, auth: object, request: Request) -> bool:
    """Only the owner or staff, and never with a worker token (a pilot cannot mint more pilots)."""
    if worker_token_of(auth) is not None:
        return False
    return bool(user.is_staff or (request.owner_id is not None and request.owner_id == user.pk))
