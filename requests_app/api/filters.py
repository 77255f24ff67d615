"""FilterSets of the read endpoints; status filters take names or values, comma-separated.

Every filter refuses what its column cannot hold with a 400 naming it: ids and numbers in ASCII
digits within the column's range, datetimes of any valid offset (sent to the database in UTC).
"""

from __future__ import annotations

import datetime as dt
import re

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from requests_app.models import Collection, Content, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    ContentStatus,
    MessageStatus,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)

from .fields import INT64, ascii_integer, choices_description, parse_choice

_FIRST_INSTANT = dt.datetime.min.replace(tzinfo=dt.UTC)
_LAST_INSTANT = dt.datetime.max.replace(tzinfo=dt.UTC)


class BigIntegerFormField(forms.Field):
    """An id or bigint value: ASCII digits, within PostgreSQL's bigint."""

    default_error_messages = {"invalid": f"must be an integer between {INT64[0]} and {INT64[1]}"}

    def to_python(self, value: str | None) -> int | None:
        # Absent is no filter; present but empty is not a number (the schema says integer).
        if value is None:
            return None
        number = ascii_integer(value)
        if number is None or not INT64[0] <= number <= INT64[1]:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


@extend_schema_field({"type": "integer", "format": "int64", "minimum": INT64[0], "maximum": INT64[1]})
class BigIntegerFilter(django_filters.Filter):
    """Exact match on an id or bigint column (``?request=12``, ``?after=``)."""

    field_class = BigIntegerFormField


class UTCDateTimeField(forms.DateTimeField):
    """ISO 8601 datetimes handed to the database in UTC.

    PostgreSQL refuses offsets beyond +-15:59 ("time zone displacement out of range"), which
    ISO 8601 and Python allow up to +-23:59; in UTC every valid offset is fine. A datetime that
    leaves the calendar in UTC (year 1 with a positive offset) lies before, or after, every
    stored row, so the calendar's first or last instant compares the same.
    """

    def to_python(self, value):
        if value == "":
            # Present but empty is not a datetime (the schema says date-time); absent is no filter.
            raise forms.ValidationError("not a valid ISO 8601 datetime: the value is empty", code="invalid")
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(dt.UTC)
        except OverflowError:
            return _FIRST_INSTANT if result.year == dt.MINYEAR else _LAST_INSTANT


@extend_schema_field({"type": "string", "format": "date-time"})
class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class ChoicesFilter(django_filters.Filter):
    """``?status=Finished,SubFinished`` or ``?status=3,4``; an unknown name is a 400 naming it."""

    field_class = forms.CharField

    def __init__(self, *args, choices_enum, **kwargs) -> None:
        self.choices_enum = choices_enum
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)
        # The schema: a comma-separated list of the names or values (names also match case-blind).
        tokens = "|".join([*(re.escape(m.label) for m in choices_enum), *(str(m.value) for m in choices_enum)])
        self._spectacular_annotation = {
            "field": {
                "type": "string",
                "pattern": f"^(?:(?:{tokens})(?:,(?:{tokens}))*)?$",
                "description": f"names or values, comma-separated: {choices_description(choices_enum)}",
            }
        }

    def filter(self, qs, value):
        if not value:
            return qs
        try:
            values = [parse_choice(self.choices_enum, item.strip(), self.field_name) for item in value.split(",")]
        except ValidationError as exc:
            raise ValidationError({self.field_name: exc.detail}) from None
        return qs.filter(**{f"{self.field_name}__in": values})


class RequestFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=RequestStatus)
    request_type = ChoicesFilter(choices_enum=RequestType)
    scope = django_filters.CharFilter()
    name = django_filters.CharFilter()
    name_contains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    requester = django_filters.CharFilter()
    workload_id = BigIntegerFilter()
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = DateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = DateTimeFilter(field_name="updated_at", lookup_expr="lt")

    class Meta:
        model = Request
        fields = ["status", "request_type", "scope", "name", "requester", "workload_id"]


class TransformFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=RequestStatus)
    request = BigIntegerFilter(field_name="request_id")
    workload_id = BigIntegerFilter()

    class Meta:
        model = Transform
        fields = ["status", "request", "workload_id"]


class ProcessingFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=ProcessingStatus)
    request = BigIntegerFilter(field_name="request_id")
    transform = BigIntegerFilter(field_name="transform_id")

    class Meta:
        model = Processing
        fields = ["status", "request", "transform"]


class CollectionFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=CollectionStatus)
    relation_type = ChoicesFilter(choices_enum=CollectionRelationType)
    request = BigIntegerFilter(field_name="request_id")
    transform = BigIntegerFilter(field_name="transform_id")
    scope = django_filters.CharFilter()
    name = django_filters.CharFilter()

    class Meta:
        model = Collection
        fields = ["status", "relation_type", "request", "transform", "scope", "name"]


class ContentFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=ContentStatus)
    collection = BigIntegerFilter(field_name="collection_id")
    name = django_filters.CharFilter()

    class Meta:
        model = Content
        fields = ["status", "collection", "name"]


class MessageFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=MessageStatus)
    request = BigIntegerFilter(field_name="request_id")
    transform = BigIntegerFilter(field_name="transform_id")
    workload_id = BigIntegerFilter()
    msg_type = django_filters.CharFilter()
    # The REST pull: messages after the last id the consumer saw.
    after = BigIntegerFilter(field_name="id", lookup_expr="gt")

    class Meta:
        model = Message
        fields = ["status", "request", "transform", "workload_id", "msg_type", "after"]
