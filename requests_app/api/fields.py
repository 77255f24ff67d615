"""Fields that read iDDS enums given as integer values or names, and integers that fit their column."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.db import models
from rest_framework import serializers

# Database column ranges: a value outside them would reach PostgreSQL and fail there.
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# ASCII digits only: str.isdigit() and int() also accept "³" or "١٢", which no client means.
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def ascii_integer(text: str) -> int | None:
    """The integer that ``text`` spells in ASCII digits (at most 20 of them), else None."""
    stripped = text.strip()
    return int(stripped) if _ASCII_INTEGER.fullmatch(stripped) else None


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def parse_choice(choices: type[models.IntegerChoices], value: object, field: str) -> int:
    """2, "2", "StageIn", "stage_in" and "STAGE_IN" all mean StageIn; anything else is an error."""
    if isinstance(value, bool):
        raise serializers.ValidationError(f"{field} must be an integer or a name, not a boolean")
    number = ascii_integer(value) if isinstance(value, str) else value
    if isinstance(number, int):
        if number in choices.values:
            return number
    elif isinstance(value, str):
        wanted = _normalise(value)
        for member in choices:
            if wanted in (_normalise(member.label), _normalise(member.name)):
                return int(member.value)
    known = ", ".join(f"{m.value} ({m.label})" for m in choices)
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
    raise serializers.ValidationError(f"unknown {field} {shown!r}; use one of {known}")


def choices_description(choices: type[models.IntegerChoices]) -> str:
    """``0 New, 1 Ready, ...``: the value-to-name table that the schema shows next to an enum."""
    return ", ".join(f"{m.value} {m.label}" for m in choices)


class ChoiceField(serializers.Field):
    """Writes accept a value or a name; reads give the name (``<field>_value`` carries the int).

    ``schema_values`` (a callable) narrows the values the schema offers for writes to those the
    server will take, e.g. the request types some work type serves; the others are refused later.
    """

    def __init__(
        self,
        choices: type[models.IntegerChoices],
        *,
        schema_values: Callable[[], Iterable[int]] | None = None,
        **kwargs,
    ) -> None:
        self.choices_enum = choices
        self.schema_values = schema_values
        super().__init__(**kwargs)

    def writable_values(self) -> list[int]:
        """The integer values a write may use, as the schema shows them."""
        values = self.schema_values() if self.schema_values else self.choices_enum.values
        return sorted(int(value) for value in values)

    def to_internal_value(self, data: object) -> int:
        return parse_choice(self.choices_enum, data, self.field_name)

    def to_representation(self, value: int) -> str:
        try:
            return self.choices_enum(value).label
        except ValueError:
            return str(value)


class BoundedIntegerField(serializers.IntegerField):
    """An integer in ASCII digits within its column's range (``INT32`` unless told ``INT64``)."""

    def __init__(self, *, column: tuple[int, int] = INT32, **kwargs) -> None:
        low, high = column
        kwargs["min_value"] = max(kwargs.get("min_value", low), low)
        kwargs["max_value"] = min(kwargs.get("max_value", high), high)
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, str):
            number = ascii_integer(data)
            if number is None:
                self.fail("invalid")
            data = number
        return super().to_internal_value(data)
