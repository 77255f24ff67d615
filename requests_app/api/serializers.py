"""Serializers: explicit field lists for reads, an input serializer for submits."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.reverse import reverse

from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    CollectionType,
    ContentStatus,
    ContentType,
    MessageStatus,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)
from requests_app.worktypes.registry import known_request_types

from .fields import INT64, BoundedIntegerField, ChoiceField


class RequestSerializer(serializers.ModelSerializer):
    request_id = serializers.IntegerField(source="pk", read_only=True)
    url = serializers.SerializerMethodField()
    # Requests made by management commands may have no owner.
    owner = serializers.CharField(source="owner.username", default=None, read_only=True, allow_null=True)
    request_type = ChoiceField(RequestType)
    status = ChoiceField(RequestStatus)
    status_value = serializers.IntegerField(source="status", read_only=True)

    class Meta:
        model = Request
        fields = [
            "request_id",
            "url",
            "scope",
            "name",
            "requester",
            "owner",
            "request_type",
            "transform_tag",
            "workload_id",
            "priority",
            "lifetime",
            "status",
            "status_value",
            "request_metadata",
            "processing_metadata",
            "errors",
            "created_at",
            "updated_at",
            "expired_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: Request) -> str:
        return reverse("request-detail", args=[obj.pk], request=self.context.get("request"))


class RequestCreateSerializer(serializers.Serializer):
    """What a client submits; ``request_metadata`` is then validated by the request's work type."""

    KNOWN = {
        "request_type",
        "scope",
        "name",
        "requester",
        "workload_id",
        "priority",
        "lifetime",
        "transform_tag",
        "request_metadata",
        "status",
    }
    request_type = ChoiceField(RequestType, schema_values=lambda: known_request_types().keys())
    scope = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    requester = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    workload_id = BoundedIntegerField(column=INT64, required=False, allow_null=True, default=None)
    priority = BoundedIntegerField(required=False, default=0, min_value=-1_000_000, max_value=1_000_000)
    lifetime = BoundedIntegerField(required=False, default=30, min_value=1, max_value=3650, help_text="days")
    transform_tag = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    # iDDS clients send "status": 0; accepted for compatibility, a new request is always New.
    status = BoundedIntegerField(required=False, min_value=0, max_value=0)
    request_metadata = serializers.DictField(help_text="the work type's parameters")

    def validate_request_metadata(self, metadata: dict) -> dict:
        """A ``workload_id`` given inside the metadata becomes the request's (a bigint column)."""
        inner = metadata.get("workload_id")
        if isinstance(inner, int) and not isinstance(inner, bool) and not INT64[0] <= inner <= INT64[1]:
            raise serializers.ValidationError({"workload_id": f"must be between {INT64[0]} and {INT64[1]}"})
        return metadata

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": f"the body must be a JSON object, got {type(data).__name__}"}
            )
        unknown = sorted(set(data) - self.KNOWN)
        if unknown:
            raise serializers.ValidationError(
                {name: f"unknown field; known fields: {', '.join(sorted(self.KNOWN))}" for name in unknown}
            )
        return super().to_internal_value(data)


class TransformSerializer(serializers.ModelSerializer):
    transform_id = serializers.IntegerField(source="pk", read_only=True)
    request_id = serializers.IntegerField(read_only=True)
    transform_type = ChoiceField(RequestType)
    status = ChoiceField(RequestStatus)

    class Meta:
        model = Transform
        fields = [
            "transform_id",
            "request_id",
            "transform_type",
            "transform_tag",
            "workload_id",
            "priority",
            "status",
            "transform_metadata",
            "retries",
            "errors",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields


class ProcessingSerializer(serializers.ModelSerializer):
    processing_id = serializers.IntegerField(source="pk", read_only=True)
    transform_id = serializers.IntegerField(read_only=True)
    request_id = serializers.IntegerField(read_only=True)
    status = ChoiceField(ProcessingStatus)

    class Meta:
        model = Processing
        fields = [
            "processing_id",
            "transform_id",
            "request_id",
            "status",
            "external_id",
            "processing_metadata",
            "claimed_by",
            "claimed_until",
            "next_poll_at",
            "poll_period",
            "poll_count",
            "retries",
            "errors",
            "submitted_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CollectionSerializer(serializers.ModelSerializer):
    coll_id = serializers.IntegerField(source="pk", read_only=True)
    transform_id = serializers.IntegerField(read_only=True)
    request_id = serializers.IntegerField(read_only=True)
    relation_type = ChoiceField(CollectionRelationType)
    coll_type = ChoiceField(CollectionType)
    status = ChoiceField(CollectionStatus)

    class Meta:
        model = Collection
        fields = [
            "coll_id",
            "transform_id",
            "request_id",
            "relation_type",
            "coll_type",
            "scope",
            "name",
            "status",
            "total_files",
            "processed_files",
            "failed_files",
            "bytes",
            "processed_bytes",
            "coll_metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ContentSerializer(serializers.ModelSerializer):
    content_id = serializers.IntegerField(source="pk", read_only=True)
    coll_id = serializers.IntegerField(source="collection_id", read_only=True)
    content_type = ChoiceField(ContentType)
    status = ChoiceField(ContentStatus)

    class Meta:
        model = Content
        fields = [
            "content_id",
            "coll_id",
            "scope",
            "name",
            "content_type",
            "status",
            "bytes",
            "adler32",
            "path",
            "details",
            "retries",
            "status_changed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    msg_pk = serializers.IntegerField(source="pk", read_only=True)
    request_id = serializers.IntegerField(read_only=True)
    transform_id = serializers.IntegerField(read_only=True)
    status = ChoiceField(MessageStatus)

    class Meta:
        model = Message
        fields = [
            "msg_pk",
            "msg_id",
            "msg_type",
            "status",
            "request_id",
            "transform_id",
            "workload_id",
            "num_contents",
            "body",
            "attempts",
            "next_attempt_at",
            "last_error",
            "delivered_to",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "entity", "entity_id", "old_status", "new_status", "reason", "actor", "created_at"]
        read_only_fields = fields
