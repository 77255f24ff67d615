"""Errors in the client's form: a status code plus ``ExceptionClass`` / ``ExceptionMessage`` headers.

The client raises ``getattr(idds.common.exceptions, ExceptionClass)(ExceptionMessage)``, so the class
names here are the client's own; the message is ``{"msg": "<text>"}``.
"""

from __future__ import annotations

import json
import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from rest_framework.exceptions import ValidationError as DrfValidationError

from requests_app.api.exceptions import _flatten
from requests_app.errors import ApplicationError, ConflictError, IllegalTransition, NotFoundError

logger = logging.getLogger("idds.wire.errors")

#: Longest message put in a header; proxies refuse very long header lines.
MAX_MESSAGE_LENGTH = 2000


class WireError(Exception):
    """A refusal with the client's exception class and an HTTP status."""

    def __init__(self, message: str, *, exception_class: str = "BadRequest", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.exception_class = exception_class
        self.status = status


def bad_request(message: str) -> WireError:
    return WireError(message, exception_class="BadRequest", status=400)


def no_object(message: str) -> WireError:
    return WireError(message, exception_class="NoObject", status=404)


def not_allowed(message: str) -> WireError:
    return WireError(message, exception_class="AuthenticationNoPermission", status=403)


def unauthenticated(message: str) -> WireError:
    return WireError(message, exception_class="AuthenticationNoPermission", status=401)


def as_wire_error(exc: Exception) -> WireError:
    """The client's form of any exception a view may raise; unexpected ones are logged as bugs."""
    if isinstance(exc, WireError):
        return exc
    if isinstance(exc, NotFoundError):
        return no_object(exc.message)
    if isinstance(exc, (IllegalTransition, ConflictError)):
        return WireError(exc.message, exception_class="ConflictRequestException", status=409)
    if isinstance(exc, ApplicationError):
        if exc.http_status in (401, 403):
            return WireError(exc.message, exception_class="AuthenticationNoPermission", status=exc.http_status)
        return bad_request(exc.message)
    if isinstance(exc, DrfValidationError):
        return bad_request(_summary(_flatten(exc.detail)))
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return bad_request(_summary(_flatten(errors)))
    if isinstance(exc, Http404):
        return no_object(str(exc) or "not found")
    if isinstance(exc, PermissionDenied):
        return not_allowed(str(exc) or "not allowed")
    logger.exception("unexpected error in the /idds/ adapter")
    return WireError("internal error; the server log has the details", exception_class="IDDSException", status=500)


def _summary(flat: dict[str, str]) -> str:
    return "invalid input: " + "; ".join(f"{field}: {problem}" for field, problem in flat.items())


def error_response(exc: Exception) -> HttpResponse:
    """The HTTP answer for ``exc``: headers the client reads, and the same text as a JSON body for humans."""
    error = as_wire_error(exc)
    # One line of ASCII: header values must be latin-1, and a newline would end the header.
    message = " ".join(error.message.split())[:MAX_MESSAGE_LENGTH]
    encoded = json.dumps({"msg": message})
    response = HttpResponse(encoded, status=error.status, content_type="application/json")
    response["ExceptionClass"] = error.exception_class
    response["ExceptionMessage"] = encoded
    return response
