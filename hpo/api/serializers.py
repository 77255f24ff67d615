"""HPO API payloads: explicit fields for points, input serializers for the worker verbs."""

from __future__ import annotations

import math
from typing import Any

from rest_framework import serializers

from hpo.services import MAX_CHECKOUT, MAX_STEP, MAX_WORKER_LENGTH
from requests_app.models import ApiToken, Content
from requests_app.models.statuses import ContentStatus

#: Longest lease a worker may ask for: a week.
MAX_LEASE_SECONDS = 7 * 24 * 3600
#: Most points one list returns.
MAX_POINTS_LIMIT = 10_000
#: Deepest nesting accepted in report ``metrics``.
MAX_METRICS_DEPTH = 8
#: Longest worker-token lifetime a caller may ask for, in days.
MAX_TOKEN_DAYS = 3650
STATUS_NAMES = {label.lower(): value for value, label in ContentStatus.choices}


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
    pruned = serializers.SerializerMethodField()

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
            "pruned",
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

    def get_pruned(self, obj: Content) -> bool:
        """Stopped early by the study's rule; its loss is the last intermediate value."""
        return bool(obj.details.get("pruned"))


def worker_field(**kwargs: Any) -> serializers.CharField:
    """A worker name: 1 to 255 characters; DRF's CharField already refuses NUL and lone surrogates."""
    return serializers.CharField(max_length=MAX_WORKER_LENGTH, **kwargs)


class AsciiIntegerField(serializers.IntegerField):
    """An integer written in ASCII digits only: ``int()`` would also take "٣", and "³" made it raise."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or (isinstance(data, str) and not (data.isascii() and data.isdigit())):
            self.fail("invalid")
        return super().to_internal_value(data)


class FiniteFloatField(serializers.FloatField):
    """A finite number; ``true`` is not 1.0 here, and NaN or infinity would poison the study's best point."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored as PostgreSQL jsonb (NUL, lone surrogates, non-finite, too deep), or None."""
    if depth > MAX_METRICS_DEPTH:
        return f"nested deeper than {MAX_METRICS_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    if isinstance(value, str):
        if "\x00" in value:
            return "strings must not contain NUL"
        if not value.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            return "strings must not contain lone surrogates"
        return None
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((p for p in (json_problem(item, depth + 1) for item in items) if p), None)


class PointsQuery(serializers.Serializer):
    """Query parameters of the points list."""

    status = serializers.ChoiceField(
        choices=[label for _, label in ContentStatus.choices], required=False, help_text="points in this status"
    )
    worker = worker_field(required=False, help_text="points leased to or reported by this worker")
    limit = AsciiIntegerField(
        min_value=1, max_value=MAX_POINTS_LIMIT, default=1000, help_text="at most this many points"
    )

    def validate_status(self, value: str) -> int:
        return STATUS_NAMES[value.lower()]


class CheckoutInput(serializers.Serializer):
    worker = worker_field()
    count = AsciiIntegerField(min_value=1, max_value=MAX_CHECKOUT, default=1)
    lease_seconds = AsciiIntegerField(min_value=1, max_value=MAX_LEASE_SECONDS, required=False)


class WorkerInput(serializers.Serializer):
    worker = worker_field()
    lease_seconds = AsciiIntegerField(min_value=1, max_value=MAX_LEASE_SECONDS, required=False)


class ReportInput(serializers.Serializer):
    worker = worker_field(required=False, default="")
    loss = FiniteFloatField()
    metrics = serializers.DictField(required=False, default=dict)

    def validate_metrics(self, value: dict) -> dict:
        if problem := json_problem(value):
            raise serializers.ValidationError(problem)
        return value


class IntermediateInput(serializers.Serializer):
    worker = worker_field()
    step = AsciiIntegerField(min_value=0, max_value=MAX_STEP, help_text="epoch, iteration, ...: 0, 1, 2, ...")
    value = FiniteFloatField(help_text="the value at this step; lower is better, as for the loss")


class IntermediateResultSerializer(serializers.Serializer):
    """The answer to an intermediate report: go on training, or stop (the point is then recorded as pruned)."""

    id = serializers.CharField()
    step = serializers.IntegerField()
    value = serializers.FloatField()
    decision = serializers.ChoiceField(choices=["continue", "stop"])
    reason = serializers.CharField()
    point = PointSerializer()


class PingSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class FailInput(serializers.Serializer):
    worker = worker_field()
    message = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class InvalidateInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class WorkerTokenInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    expires_days = AsciiIntegerField(min_value=1, max_value=MAX_TOKEN_DAYS, required=False, allow_null=True)


class WorkerTokenSerializer(serializers.ModelSerializer):
    """A worker token as listed: its display prefix, never its key or hash."""

    state = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "study",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "state",
        ]
        read_only_fields = fields

    def get_state(self, obj: ApiToken) -> str:
        return obj.state()


class IssuedWorkerTokenSerializer(WorkerTokenSerializer):
    """A worker token just issued: ``key`` is shown this once and never stored."""

    key = serializers.CharField(read_only=True)

    class Meta(WorkerTokenSerializer.Meta):
        fields = [*WorkerTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


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
