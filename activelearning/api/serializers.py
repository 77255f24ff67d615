"""Serializers of the active-learning API: explicit fields, inputs checked before any service runs."""

from __future__ import annotations

from rest_framework import serializers

from activelearning.models import Loop, Step, Trial, Upload
from requests_app.models import Message


class LoopSerializer(serializers.ModelSerializer):
    request_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Loop
        fields = [
            "request_id",
            "status",
            "iteration",
            "failed_steps",
            "stop_reason",
            "last_decision",
            "started_at",
            "finished_at",
        ]


class TrialSerializer(serializers.ModelSerializer):
    memo_of = serializers.CharField(source="memo_of.name", read_only=True, default=None)
    consumed_by = serializers.IntegerField(source="consumed_by_id", read_only=True)

    class Meta:
        model = Trial
        fields = [
            "name",
            "iteration",
            "parameters",
            "reported",
            "results",
            "metrics",
            "reported_at",
            "late",
            "consumed_by",
            "memo_of",
        ]


class StepSerializer(serializers.ModelSerializer):
    forked_from = serializers.IntegerField(source="forked_from_id", read_only=True)

    class Meta:
        model = Step
        fields = [
            "id",
            "number",
            "trigger",
            "status",
            "outcome",
            "input",
            "input_sha256",
            "input_bytes",
            "program",
            "program_sha256",
            "output",
            "output_text",
            "returncode",
            "stopped",
            "error",
            "stdout_tail",
            "stderr_tail",
            "runtime",
            "duration_seconds",
            "merge",
            "forked_from",
            "created_at",
            "started_at",
            "finished_at",
        ]


class LoopMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["msg_id", "msg_type", "status", "body", "created_at"]


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ["name", "original_name", "sha256", "size", "members", "created_at"]


class ReportSerializer(serializers.Serializer):
    """The answer to a report: the trial as recorded, and the step it started (if any)."""

    trial = TrialSerializer()
    step = serializers.IntegerField(allow_null=True)


class ResultsInputSerializer(serializers.Serializer):
    """Mode (a): the results of the task that ran parameter set ``name``."""

    name = serializers.RegexField(r"^[0-9]{1,18}$", help_text="the parameter set's content name")
    results = serializers.JSONField(help_text="anything the decision reads")
    metrics = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)


class StepInputSerializer(serializers.Serializer):
    """Mode (b): the results of a task the caller ran, and how long to wait for the decision."""

    parameters = serializers.DictField(required=False, default=dict)
    results = serializers.JSONField()
    metrics = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)
    wait = serializers.FloatField(required=False, default=10.0, min_value=0.0, max_value=3600.0)


class UploadInputSerializer(serializers.Serializer):
    file = serializers.FileField()
