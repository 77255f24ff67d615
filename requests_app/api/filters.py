"""FilterSets of the read endpoints; status filters take names or values, comma-separated."""

from __future__ import annotations

import django_filters
from django import forms

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

from .fields import parse_choice


class ChoicesFilter(django_filters.Filter):
    """``?status=Finished,SubFinished`` or ``?status=3,4``; an unknown name is a 400 naming it."""

    field_class = forms.CharField

    def __init__(self, *args, choices_enum, **kwargs) -> None:
        self.choices_enum = choices_enum
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        from rest_framework.exceptions import ValidationError

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
    workload_id = django_filters.NumberFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")

    class Meta:
        model = Request
        fields = ["status", "request_type", "scope", "name", "requester", "workload_id"]


class TransformFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=RequestStatus)
    request = django_filters.NumberFilter(field_name="request_id")
    workload_id = django_filters.NumberFilter()

    class Meta:
        model = Transform
        fields = ["status", "request", "workload_id"]


class ProcessingFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=ProcessingStatus)
    request = django_filters.NumberFilter(field_name="request_id")
    transform = django_filters.NumberFilter(field_name="transform_id")

    class Meta:
        model = Processing
        fields = ["status", "request", "transform"]


class CollectionFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=CollectionStatus)
    relation_type = ChoicesFilter(choices_enum=CollectionRelationType)
    request = django_filters.NumberFilter(field_name="request_id")
    transform = django_filters.NumberFilter(field_name="transform_id")
    scope = django_filters.CharFilter()
    name = django_filters.CharFilter()

    class Meta:
        model = Collection
        fields = ["status", "relation_type", "request", "transform", "scope", "name"]


class ContentFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=ContentStatus)
    collection = django_filters.NumberFilter(field_name="collection_id")
    name = django_filters.CharFilter()

    class Meta:
        model = Content
        fields = ["status", "collection", "name"]


class MessageFilter(django_filters.FilterSet):
    status = ChoicesFilter(choices_enum=MessageStatus)
    request = django_filters.NumberFilter(field_name="request_id")
    transform = django_filters.NumberFilter(field_name="transform_id")
    workload_id = django_filters.NumberFilter()
    msg_type = django_filters.CharFilter()
    # The REST pull: messages after the last id the consumer saw.
    after = django_filters.NumberFilter(field_name="id", lookup_expr="gt")

    class Meta:
        model = Message
        fields = ["status", "request", "transform", "workload_id", "msg_type", "after"]
