"""Validation of stage-in request parameters (docs/idds-reference.md §3), one clear error per field."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from requests_app.errors import WorkTypeValidationError

RULE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
DAY = 86_400
# Defaults: restage after three days (the calibrated simulator puts 99 % of the reference campaign
# on disk in about four, and a throttled dataset's files land within hours of its admission); rules
# live 15 days while staging (docs/idds-reference.md §5); one extra rule, as the original service did.
DEFAULT_MAX_WAITING_TIME = 3 * DAY
DEFAULT_RULE_LIFETIME = 15 * DAY
DEFAULT_MAX_EXTRA_RULES = 1


def _text(value: Any, *, limit: int = 255) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= limit:
        return value.strip()
    return None


def _number(value: Any, *, low: float, high: float, integer: bool) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if integer and not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def setting_max_waiting_time() -> int:
    return settings.IDDS_CAROUSEL_MAX_WAITING_TIME


def setting_max_extra_rules() -> int:
    return settings.IDDS_CAROUSEL_MAX_EXTRA_RULES


def clean_stagein_metadata(metadata: dict[str, Any], request_fields: dict[str, Any]) -> dict[str, Any]:
    """Return the cleaned parameters (unknown keys kept as sent) or raise naming every bad field."""
    if not isinstance(metadata, dict):
        raise WorkTypeValidationError({"request_metadata": "must be a JSON object"})
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = dict(metadata)
    for field in ("scope", "name"):
        raw = request_fields.get(field) or metadata.get(field)
        value = _text(raw)
        if value is None:
            errors[field] = f"required: the dataset {field} (a non-empty string of at most 255 characters)"
        else:
            cleaned[field] = value
    workload_id = metadata.get("workload_id", request_fields.get("workload_id"))
    if _number(workload_id, low=0, high=2**63 - 1, integer=True) is None:
        errors["request_metadata.workload_id"] = (
            "required: the workload system's task id, a non-negative integer"
            if workload_id is None
            else f"must be a non-negative integer, got {workload_id!r}"
        )
    else:
        cleaned["workload_id"] = workload_id
    rule_id = metadata.get("rule_id")
    if rule_id is not None and not (isinstance(rule_id, str) and RULE_ID.match(rule_id)):
        errors["request_metadata.rule_id"] = f"must be a 32-character hexadecimal rule id, got {rule_id!r}"
    for field in ("src_rse", "dest_rse"):
        value = metadata.get(field)
        if value is not None and _text(value) is None:
            errors[f"request_metadata.{field}"] = f"must be a non-empty RSE expression string, got {value!r}"
    if rule_id is None and metadata.get("dest_rse") is None:
        errors["request_metadata.dest_rse"] = "required when there is no rule_id: the RSE to stage the dataset to"
    limits = {
        "max_waiting_time": (
            1,
            365 * DAY,
            False,
            setting_max_waiting_time(),
            "seconds before missing files are re-staged",
        ),
        "lifetime": (1, 365 * DAY, True, DEFAULT_RULE_LIFETIME, "seconds the staging rule lives"),
        "priority": (-1000, 1000, True, 0, "the request priority"),
        "max_extra_rules": (0, 5, True, setting_max_extra_rules(), "extra rules allowed for stuck files"),
    }
    for field, (low, high, integer, default, meaning) in limits.items():
        value = metadata.get(field, default)
        if _number(value, low=low, high=high, integer=integer) is None:
            kind = "an integer" if integer else "a number"
            errors[f"request_metadata.{field}"] = f"must be {kind} between {low} and {high} ({meaning}), got {value!r}"
        else:
            cleaned[field] = value
    if errors:
        raise WorkTypeValidationError(errors)
    return cleaned
