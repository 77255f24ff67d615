"""DRF authentication by hashed API token: ``Authorization: Token <key>`` or ``Authorization: Bearer <key>``."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .tokens import TokenRefused, token_authenticate

#: Accepted schemes: "Token" is what clients and benches send today, "Bearer" the common form.
SCHEMES = frozenset({"token", "bearer"})


class ApiTokenAuthentication(BaseAuthentication):
    """Sets ``request.user`` to the token's user and ``request.auth`` to the ``ApiToken``.

    A missing header leaves the request to the next class (session login); a present but bad key is a 401.
    """

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in SCHEMES:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("malformed Authorization header: use 'Token <key>'")
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        try:
            found = token_authenticate(raw_key)
        except TokenRefused as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None
        if found is None:
            raise exceptions.AuthenticationFailed("invalid token")
        return found

    def authenticate_header(self, request) -> str:
        # A value here makes DRF answer 401 (not 403) to unauthenticated calls.
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token header in the OpenAPI schema (drf-spectacular finds it by ``target_class``)."""

    target_class = "requests_app.auth.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` or `Bearer <key>`; keys come from `manage.py issue_token` or a "
            "study's worker-tokens endpoint.",
        }
