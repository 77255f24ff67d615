"""Admin pages for the simulated tape system and the throttle (read-mostly: the simulator owns them)."""

from __future__ import annotations

from django.contrib import admin

from .models import SimClock, SimDataset, SimRule, Tape, TapeDrive, TapeLibrary, ThrottleReservation


@admin.register(TapeLibrary)
class TapeLibraryAdmin(admin.ModelAdmin):
    list_display = ["name", "mount_seconds", "max_seek_seconds", "throughput_bps", "stuck_fraction"]


@admin.register(TapeDrive)
class TapeDriveAdmin(admin.ModelAdmin):
    list_display = ["library", "number", "free_at", "mounted_tape", "head_position"]
    list_select_related = ["library", "mounted_tape"]


@admin.register(Tape)
class TapeAdmin(admin.ModelAdmin):
    list_display = ["label", "library", "capacity_bytes"]
    list_filter = ["library"]
    search_fields = ["label"]


@admin.register(SimDataset)
class SimDatasetAdmin(admin.ModelAdmin):
    list_display = ["scope", "name", "library", "copy_library", "total_files", "total_bytes", "campaign"]
    list_filter = ["library", "campaign"]
    search_fields = ["name"]


@admin.register(SimRule)
class SimRuleAdmin(admin.ModelAdmin):
    list_display = ["id", "scope", "name", "rse_expression", "source_replica_expression", "created_at", "deleted_at"]
    search_fields = ["id", "name", "comment"]


@admin.register(SimClock)
class SimClockAdmin(admin.ModelAdmin):
    list_display = ["real_origin", "sim_origin", "scale"]


@admin.register(ThrottleReservation)
class ThrottleReservationAdmin(admin.ModelAdmin):
    list_display = ["request_id", "source", "destination", "files", "admitted", "created_at", "admitted_at"]
    list_filter = ["admitted", "source"]
