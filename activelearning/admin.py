"""Admin pages of active learning: loops, their trials, and every decision step (the audit trail), read-only."""

from __future__ import annotations

from django.contrib import admin

from activelearning.models import Loop, Step, Trial, Upload


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit trail is written by the service only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Loop)
class LoopAdmin(ReadOnlyAdmin):
    list_display = ["request", "status", "iteration", "failed_steps", "stop_reason", "started_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["=request__id"]
    raw_id_fields = ["transform", "request"]


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["id", "loop", "number", "trigger", "status", "outcome", "returncode", "duration_seconds"]
    list_filter = ["status", "outcome", "trigger"]
    search_fields = ["=loop__request__id", "input_sha256", "program_sha256"]
    raw_id_fields = ["loop", "forked_from"]


@admin.register(Trial)
class TrialAdmin(ReadOnlyAdmin):
    list_display = ["name", "loop", "iteration", "reported", "late", "consumed_by", "memo_of"]
    list_filter = ["reported", "late"]
    search_fields = ["=loop__request__id", "key"]
    raw_id_fields = ["content", "loop", "consumed_by", "memo_of"]


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = ["name", "original_name", "size", "members", "owner", "created_at"]
    search_fields = ["name", "sha256", "original_name"]
