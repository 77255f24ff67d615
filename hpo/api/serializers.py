"""HPO API payloads: explicit fields for points, input serializers for the worker verbs."""

from __future__ import annotations

from rest_framework import serializers

from requests_app.models import Content
from requests_app.models.statuses import ContentStatus


class PointSerializer(serializers.ModelSerializer):
    """A point: id (stable string), parameters, loss, status, lease holder, provenance."""

    id = serializers.CharField(source="name", read_only=True)
    status = serializers.SerializerMethodField()
    parameters = serializers.SerializerMethodField()
    loss = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    provenance = serializers.SerializerMethodField()
    worker = serializers.SerializerMethodField()
    lease_expires_at = serializers.SerializerMethodField()
    failures = serializers.SerializerMethodField()

    class Meta:
        model = Content
        fields = [
            "id",
            "status",
            "parameters",
            "loss",
            "metrics",
            "provenance",
            "worker",
            "lease_expires_at",
            "retries",
            "failures",
            "updated_at",
        ]
        read_only_fields = fields

    def get_status(self, obj: Content) -> str:
        return ContentStatus(obj.status).label

    def get_parameters(self, obj: Content) -> dict:
        return obj.details.get("parameters", {})

    def get_loss(self, obj: Content) -> float | None:
        return obj.details.get("loss") if obj.status == ContentStatus.AVAILABLE else None

    def get_metrics(self, obj: Content) -> dict:
        return obj.details.get("metrics") or {}

    def get_provenance(self, obj: Content) -> dict:
        return obj.details.get("provenance") or {}

    def _lease(self, obj: Content):
        try:
            return obj.hpo_lease
        except Content.hpo_lease.RelatedObjectDoesNotExist:
            return None

    def get_worker(self, obj: Content) -> str | None:
        lease = self._lease(obj)
        return lease.worker if lease else obj.details.get("reported_by")

    def get_lease_expires_at(self, obj: Content) -> str | None:
        lease = self._lease(obj)
        return lease.expires_at.isoformat() if lease else None

    def get_failures(self, obj: Content) -> list:
        return obj.details.get("failures") or []


class CheckoutInput(serializers.Serializer):
    worker = serializers.CharField(max_length=255)
    count = serializers.IntegerField(min_value=1, max_value=100, default=1)
    lease_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)


class WorkerInput(serializers.Serializer):
    worker = serializers.CharField(max_length=255)
    lease_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, required=False)


class ReportInput(serializers.Serializer):
    worker = serializers.CharField(max_length=255, required=False, default="")
    loss = serializers.FloatField()
    metrics = serializers.DictField(required=False, default=dict)

    def validate_loss(self, value: float) -> float:
        import math

        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


class FailInput(serializers.Serializer):
    worker = serializers.CharField(max_length=255)
    message = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class InvalidateInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class BestPointSerializer(serializers.Serializer):
    id = serializers.CharField()
    parameters = serializers.DictField()
    loss = serializers.FloatField()


class GenerationSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField()
    seconds = serializers.FloatField(allow_null=True)


class StudySummarySerializer(serializers.Serializer):
    """Shape of the study summary (documentation of ``hpo.services.study_summary``)."""

    request_id = serializers.IntegerField()
    transform_id = serializers.IntegerField()
    workload_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    finished = serializers.BooleanField()
    best = BestPointSerializer(allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField())
    points = serializers.IntegerField()
    max_points = serializers.IntegerField()
    generations = GenerationSerializer(many=True)
