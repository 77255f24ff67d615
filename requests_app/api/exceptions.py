"""One exception handler for the API: every error body is
``{"error": "<what is wrong and how to fix it>", "errors": {field: problem}?, ...}``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from requests_app.errors import ApplicationError

from .parsers import UnsafeJSONError

logger = logging.getLogger("idds.api.errors")


def _flatten(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error detail -> {"field.sub": "message; message"}."""
    if isinstance(detail, dict):
        flat: dict[str, str] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(_flatten(value, name))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "non_field_errors": "; ".join(str(item) for item in detail)}
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix or "non_field_errors": str(detail)}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """The JSON error shape for every refusal; None (a logged 500 with an id, see error_views) for bugs."""
    if isinstance(exc, ApplicationError):
        return Response({"error": exc.message, **exc.extra}, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": "; ".join(exc.messages)}
        flat = _flatten(errors)
        return Response({"error": _summary(flat), "errors": flat}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response({"error": f"payload too large: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        return Response({"error": str(exc) or "not found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, UnsafeJSONError):
        return Response({"error": str(exc.detail), "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DataError):
        # Input the validators let through but the database refused (a range or text check missed):
        # still the client's 400, and a warning with the traceback so the gap gets closed.
        logger.warning("input refused by the database: %s", exc, exc_info=True)
        return Response(
            {"error": f"a value does not fit the database: {str(exc).splitlines()[0]}"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        flat = _flatten(exc.detail)
        response.data = {"error": _summary(flat), "errors": flat}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": str(response.data["detail"])}
    return response


def _summary(flat: dict[str, str]) -> str:
    return "invalid input: " + "; ".join(f"{field}: {problem}" for field, problem in flat.items())
