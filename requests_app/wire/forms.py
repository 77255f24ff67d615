"""The request forms workload systems send (docs/idds-reference.md §3), read into ``request_create`` arguments.

The top-level fields go through the native API's ``RequestCreateSerializer`` and the metadata through the
work type's ``validate`` (in ``request_create``), so a request is accepted or refused exactly as over /api/v1/.
"""

from __future__ import annotations

from typing import Any

from requests_app.api.fields import ascii_integer
from requests_app.api.serializers import RequestCreateSerializer
from requests_app.models.statuses import RequestStatus, RequestType

from .encoding import enum_value
from .errors import bad_request

#: Keys the client adds on its own (``ClientManager`` copies the submitting user); identity comes from auth.
CLIENT_ONLY_KEYS = frozenset({"username", "userdn"})
#: iDDS enum fields of a request body: integers or enum objects on the wire.
ENUM_FIELDS = {"request_type": RequestType, "status": RequestStatus}


def _workload_id_as_integer(metadata: dict[str, Any]) -> dict[str, Any]:
    """PanDA's and the original's own active-learning and HPO forms send ``"workload_id": "20525134"``; a request
    stored with it as text would announce ``workload_id: null``, which JEDI's ``int(...)`` refuses."""
    workload_id = metadata.get("workload_id")
    if not isinstance(workload_id, str):
        return metadata
    number = ascii_integer(workload_id)
    if number is None:
        raise bad_request(f"request_metadata.workload_id must be an integer, got {workload_id!r}")
    return {**metadata, "workload_id": number}


def request_create_arguments(body: Any) -> dict[str, Any]:
    """Keyword arguments of ``request_create`` for a client's request body; BadRequest naming the field."""
    if not isinstance(body, dict):
        raise bad_request(f"the request must be a JSON object, got {type(body).__name__}")
    data = {key: value for key, value in body.items() if key not in CLIENT_ONLY_KEYS}
    for field, choices in ENUM_FIELDS.items():
        if data.get(field) is not None:
            data[field] = enum_value(data[field], choices, field)
    if isinstance(data.get("transform_tag"), int) and not isinstance(data["transform_tag"], bool):
        # PanDA sends the tag as the type number (2, 4); the native field is text.
        data["transform_tag"] = str(data["transform_tag"])
    if data.get("request_metadata") is None:
        data["request_metadata"] = {}
    if isinstance(data["request_metadata"], dict):
        data["request_metadata"] = _workload_id_as_integer(data["request_metadata"])
    incoming = RequestCreateSerializer(data=data)
    incoming.is_valid(raise_exception=True)
    cleaned = dict(incoming.validated_data)
    cleaned.pop("status", None)
    cleaned["metadata"] = cleaned.pop("request_metadata")
    return cleaned
