"""The client's encoding: enum objects, RFC-1123 dates, raw JSON bodies, ``null``/``None`` path segments.

Enum objects arrive and leave as ``{"class": ..., "module": ..., "attributes": {"_value_": 0, "_name_": "New"}}``.
Only ``_value_`` and ``_name_`` are ever read from a request: a class or module named in a body is data,
never something to import.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import models
from django.http import HttpRequest, HttpResponse

from requests_app.api.json_body import MalformedJSON, UnsafeJSON, load_body

from .errors import bad_request

#: The client's module for enums; it imports it to rebuild them (the client side, not ours).
ENUM_MODULE = "idds.common.constants"
#: Path segments the client sends for "not given".
NULL_SEGMENTS = frozenset({"", "null", "None"})
TRUE_SEGMENTS = frozenset({"true", "True", "1"})
FALSE_SEGMENTS = frozenset({"false", "False", "0"} | NULL_SEGMENTS)
#: ``datetime.strftime`` format of the client's dates ("Tue, 24 Nov 2026 23:06:06 UTC").
DATE_FORMAT = "%a, %d %b %Y %H:%M:%S UTC"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def enum_object(choices: type[models.IntegerChoices], value: int | None, class_name: str | None = None) -> dict | None:
    """``value`` of ``choices`` as the client's enum object (``class_name`` when iDDS names it differently)."""
    if value is None:
        return None
    member = choices(value)
    return {
        "class": class_name or choices.__name__,
        "module": ENUM_MODULE,
        "attributes": {"_value_": int(member), "_name_": member.label, "_sort_order_": _sort_order(choices, member)},
    }


def _sort_order(choices: type[models.IntegerChoices], member: models.IntegerChoices) -> int:
    # Python enums number members in definition order, which is the order of the iDDS definitions.
    return list(choices).index(member)


def enum_value(raw: Any, choices: type[models.IntegerChoices], field: str) -> int:
    """An enum given as an integer, a digit string, a name, or an enum object; BadRequest otherwise."""
    if isinstance(raw, dict):
        attributes = raw.get("attributes")
        if not isinstance(attributes, dict):
            raise bad_request(f"{field}: an enum object needs 'attributes' with '_value_' or '_name_'")
        raw = attributes.get("_value_", attributes.get("_name_"))
    if isinstance(raw, str):
        by_label = {member.label: int(member) for member in choices}
        if raw in by_label:
            return by_label[raw]
        raw = int(raw) if raw.isascii() and raw.isdigit() else raw
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in choices.values:
        return int(raw)
    known = ", ".join(f"{member.label} ({int(member)})" for member in choices)
    raise bad_request(f"{field}: {raw!r} is not a {choices.__name__}; known: {known}")


def wire_date(value: datetime | None) -> str | None:
    """A datetime as the client writes it, in UTC and English whatever the server's locale."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return (
        f"{_WEEKDAYS[value.weekday()]}, {value.day:02d} {_MONTHS[value.month - 1]} {value.year} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} UTC"
    )


def read_body(request: HttpRequest) -> Any:
    """The raw JSON body (the client sends no Content-Type); ``None`` for an empty body or ``null``."""
    raw = request.body
    if not raw.strip():
        return None
    try:
        return load_body(raw)
    except MalformedJSON as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    except UnsafeJSON as exc:
        raise bad_request(f"body {exc.path}: {exc.problem}") from None


def segment(raw: str | None) -> str | None:
    """A path segment, or None for the client's ``null`` / ``None``."""
    if raw is None or raw in NULL_SEGMENTS:
        return None
    return raw


def segment_int(raw: str | None, field: str) -> int | None:
    """An id from the path; BadRequest naming the field for anything but digits within a bigint."""
    value = segment(raw)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > 2**63 - 1:
        raise bad_request(f"{field}: expected an integer id or null, got {value!r}")
    return int(value)


def segment_bool(raw: str | None, field: str) -> bool:
    if raw is None or raw in FALSE_SEGMENTS:
        return False
    if raw in TRUE_SEGMENTS:
        return True
    raise bad_request(f"{field}: expected True or False, got {raw!r}")


def json_response(data: Any) -> HttpResponse:
    """Every success is HTTP 200 with a JSON body (the client treats 201 and 204 as errors)."""
    return HttpResponse(orjson.dumps(data), status=200, content_type="application/json")
