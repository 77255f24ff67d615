"""Who is calling: the client's ``X-IDDS-Auth-Type`` headers mapped to this service's users.

``oidc``: ``X-IDDS-Auth-Token`` is a key from ``issue_token`` (or a study's worker token), checked by the
same ``token_authenticate`` as the native API. ``x509_proxy``: the DN a trusted TLS front end forwarded,
mapped to a user by ``map_dn``. Anything else is refused with 401.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from requests_app.auth.principals import Principal, principal_of
from requests_app.auth.tokens import TokenRefused, token_authenticate
from requests_app.auth.x509 import dn_from_request, user_for_dn

from .errors import unauthenticated


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the user, and the ApiToken used (None for x509)."""

    user: object
    token: object | None = None

    @property
    def principal(self) -> Principal:
        return principal_of(self.user, self.token)


def authenticate(request: HttpRequest) -> Caller:
    """The caller of a wire call, or a 401 WireError saying what is missing."""
    auth_type = request.headers.get("X-IDDS-Auth-Type", "")
    if auth_type == "oidc":
        return _by_token(request.headers.get("X-IDDS-Auth-Token", ""))
    if auth_type == "x509_proxy":
        return _by_dn(request)
    raise unauthenticated(f"auth type {auth_type!r} is not supported here; use oidc (with a token) or x509_proxy")


def _by_token(raw_key: str) -> Caller:
    try:
        found = token_authenticate(raw_key.strip())
    except TokenRefused as exc:
        raise unauthenticated(exc.message) from None
    if found is None:
        raise unauthenticated("invalid token: give a key from issue_token in X-IDDS-Auth-Token")
    user, token = found
    return Caller(user=user, token=token)


def _by_dn(request: HttpRequest) -> Caller:
    dn = dn_from_request(request.META)
    if dn is None:
        raise unauthenticated("no client certificate DN from a trusted TLS front end; use oidc with a token")
    user = user_for_dn(dn)
    if user is None:
        raise unauthenticated(f"the DN {dn} is not mapped to a user (an operator runs map_dn)")
    return Caller(user=user)
