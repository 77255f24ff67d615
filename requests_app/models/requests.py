"""Request: what a user or workload system asked for."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .statuses import REQUEST_TERMINAL, REQUEST_WATCHED, RequestStatus, RequestType

# Sorted, so the index condition (and its migration) is the same on every run.
_TERMINAL_SORTED = sorted(REQUEST_TERMINAL)


class RequestQuerySet(models.QuerySet):
    def visible_to(self, user) -> RequestQuerySet:
        """Every authenticated user may read every request (as in iDDS); anonymous users none."""
        if user is None or not user.is_authenticated:
            return self.none()
        return self

    def editable_by(self, user) -> RequestQuerySet:
        """Only the owner or staff may change a request."""
        if user is None or not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self
        return self.filter(owner=user)


class Request(models.Model):
    """A request; ``request_metadata`` holds the work type's parameters (cleaned by its validate)."""

    Status = RequestStatus
    Type = RequestType

    scope = models.CharField(max_length=255, blank=True, default="")
    name = models.CharField(max_length=255, blank=True, default="")
    requester = models.CharField(max_length=255, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    request_type = models.IntegerField(choices=RequestType.choices)
    transform_tag = models.CharField(max_length=64, blank=True, default="")
    workload_id = models.BigIntegerField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    lifetime = models.IntegerField(default=30, help_text="days")
    status = models.IntegerField(choices=RequestStatus.choices, default=RequestStatus.NEW)
    request_metadata = models.JSONField(default=dict, blank=True)
    processing_metadata = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    objects = RequestQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Watchdog and list filters: requests by status, newest first.
            models.Index(fields=["status", "id"], name="request_status_id"),
            models.Index(fields=["request_type", "status"], name="request_type_status"),
            models.Index(fields=["workload_id"], name="request_workload"),
            models.Index(fields=["scope", "name"], name="request_scope_name"),
            models.Index(fields=["requester"], name="request_requester"),
            models.Index(fields=["updated_at"], name="request_updated"),
            models.Index(fields=["created_at"], name="request_created"),
            # Watchdog hand-off safety net: only the few non-terminal rows are indexed.
            models.Index(
                fields=["updated_at"],
                name="request_active_updated",
                condition=Q(status__in=sorted(REQUEST_WATCHED)),
            ),
            # Lifetime sweep (services/lifetime.py): overdue live requests; ended ones drop out.
            models.Index(
                fields=["expired_at"],
                name="request_live_expiry",
                condition=~Q(status__in=_TERMINAL_SORTED),
            ),
        ]

    def __str__(self) -> str:
        return f"Request {self.pk} ({self.get_request_type_display()}, {self.get_status_display()})"

    @property
    def is_terminal(self) -> bool:
        return self.status in REQUEST_TERMINAL
