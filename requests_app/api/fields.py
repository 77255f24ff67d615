"""Fields that read iDDS enums given as integer values or names."""

from __future__ import annotations

import re

from django.db import models
from rest_framework import serializers


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def parse_choice(choices: type[models.IntegerChoices], value: object, field: str) -> int:
    """2, "2", "StageIn", "stage_in" and "STAGE_IN" all mean StageIn; anything else is an error."""
    if isinstance(value, bool):
        raise serializers.ValidationError(f"{field} must be an integer or a name, not a boolean")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        number = int(value)
        if number in choices.values:
            return number
    elif isinstance(value, str):
        wanted = _normalise(value)
        for member in choices:
            if wanted in (_normalise(member.label), _normalise(member.name)):
                return int(member.value)
    known = ", ".join(f"{m.value} ({m.label})" for m in choices)
    raise serializers.ValidationError(f"unknown {field} {value!r}; use one of {known}")


class ChoiceField(serializers.Field):
    """Writes accept a value or a name; reads give the name (``<field>_value`` carries the int)."""

    def __init__(self, choices: type[models.IntegerChoices], **kwargs) -> None:
        self.choices_enum = choices
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> int:
        return parse_choice(self.choices_enum, data, self.field_name)

    def to_representation(self, value: int) -> str:
        try:
            return self.choices_enum(value).label
        except ValueError:
            return str(value)
