"""Transform and Processing: the unit of work and its executions against the outside world."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .requests import Request
from .statuses import (
    PROCESSING_POLLABLE,
    PROCESSING_SUBMITTABLE,
    PROCESSING_TERMINAL,
    REQUEST_TERMINAL,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)


class Transform(models.Model):
    """One transformation of an input collection into an output collection (a staged dataset,
    an HPO study, an AL loop). ``transform_metadata`` is the work type's state. A transform may
    serve several requests (a duplicate stage-in joins the existing one)."""

    Status = RequestStatus

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="transforms")
    joined_requests = models.ManyToManyField(Request, related_name="joined_transforms", blank=True)
    transform_type = models.IntegerField(choices=RequestType.choices)
    transform_tag = models.CharField(max_length=64, blank=True, default="")
    workload_id = models.BigIntegerField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    status = models.IntegerField(choices=RequestStatus.choices, default=RequestStatus.NEW)
    transform_metadata = models.JSONField(default=dict, blank=True)
    # Deduplication key: a second request for the same work joins the transform holding it.
    dedup_key = models.CharField(max_length=512, null=True, blank=True)
    retries = models.IntegerField(default=0)
    errors = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["request", "id"], name="transform_request"),
            models.Index(fields=["status", "updated_at"], name="transform_status_updated"),
            models.Index(fields=["workload_id"], name="transform_workload"),
        ]
        constraints = [
            # Only one live transform per dedup key: the join of duplicate requests relies on it.
            models.UniqueConstraint(
                fields=["dedup_key"],
                name="transform_live_dedup_key",
                condition=Q(dedup_key__isnull=False) & ~Q(status__in=sorted(REQUEST_TERMINAL)),
            ),
        ]

    def __str__(self) -> str:
        return f"Transform {self.pk} ({self.get_status_display()})"

    @property
    def is_terminal(self) -> bool:
        return self.status in REQUEST_TERMINAL


class Processing(models.Model):
    """One execution against the outside world (a staging rule, a generator run, a decision run).

    Claims: a worker owns the row while ``claimed_until`` is in the future; a dead worker's claim
    simply expires, so there is no lock flag to clean up. Polls are due at ``next_poll_at``.
    """

    Status = ProcessingStatus

    transform = models.ForeignKey(Transform, on_delete=models.CASCADE, related_name="processings")
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="processings")
    status = models.IntegerField(choices=ProcessingStatus.choices, default=ProcessingStatus.NEW)
    external_id = models.CharField(max_length=255, blank=True, default="")
    processing_metadata = models.JSONField(default=dict, blank=True)
    claimed_by = models.CharField(max_length=255, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_period = models.FloatField(default=1.0, help_text="seconds; grows while nothing changes")
    poll_count = models.IntegerField(default=0)
    retries = models.IntegerField(default=0)
    errors = models.JSONField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["transform", "id"], name="processing_transform"),
            # carrier.polls_enqueue_due: pollable rows by due time (partial: terminal rows drop out).
            models.Index(
                fields=["next_poll_at"], name="processing_due", condition=Q(status__in=sorted(PROCESSING_POLLABLE))
            ),
            # watchdog: New/Submitting rows whose hand-off or claim was lost.
            models.Index(
                fields=["updated_at"], name="processing_pending", condition=Q(status__in=sorted(PROCESSING_SUBMITTABLE))
            ),
        ]

    def __str__(self) -> str:
        return f"Processing {self.pk} ({self.get_status_display()})"

    @property
    def is_terminal(self) -> bool:
        return self.status in PROCESSING_TERMINAL
