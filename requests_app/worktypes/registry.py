"""Work types by request type, loaded lazily from ``settings.IDDS_WORK_TYPES`` (dotted paths)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from requests_app.errors import WorkTypeValidationError
from requests_app.models.statuses import RequestType

from .base import WorkType


@cache
def _load(dotted_path: str) -> WorkType:
    return import_string(dotted_path)()


def known_request_types() -> dict[int, str]:
    return {int(key): path for key, path in settings.IDDS_WORK_TYPES.items()}


def get_work_type(request_type: int) -> WorkType:
    """The work type serving ``request_type``; a clear validation error when there is none."""
    path = known_request_types().get(int(request_type))
    if path is None:
        served = ", ".join(f"{value} ({RequestType(value).label})" for value in sorted(known_request_types()))
        raise WorkTypeValidationError(
            {"request_type": f"no work type serves request_type {request_type}; served: {served}"}
        )
    try:
        return _load(path)
    except ImportError as exc:
        raise WorkTypeValidationError(
            {"request_type": f"the work type for request_type {request_type} is not installed ({exc})"}
        ) from None
