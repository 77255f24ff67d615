"""Admin pages for the HPO side tables (points themselves are Contents, in the core admin)."""

from __future__ import annotations

from django.contrib import admin

from hpo.models import Generation, PointLease


@admin.register(PointLease)
class PointLeaseAdmin(admin.ModelAdmin):
    list_display = ["content", "transform", "worker", "leased_at", "expires_at", "heartbeats"]
    list_filter = ["worker"]
    raw_id_fields = ["content", "transform"]


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ["processing", "transform", "number", "status", "seconds", "started_at"]
    list_filter = ["status"]
    raw_id_fields = ["processing", "transform"]
    readonly_fields = ["points", "details", "error"]
