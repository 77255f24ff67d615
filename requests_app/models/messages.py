"""Message (the outbox) and Event (the audit log of every status transition)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .collections import Collection
from .fields import FastJSONField
from .requests import Request
from .statuses import MESSAGE_UNDELIVERED, MessageStatus
from .transforms import Processing, Transform


class Message(models.Model):
    """An outbox row, written in the same transaction as the state change it announces.

    The conductor delivers it afterwards and marks it Delivered only once every configured sink
    confirmed it. Per-message retries back off exponentially (``next_attempt_at``); after
    ``IDDS_MESSAGE_MAX_ATTEMPTS`` the row is Failed with ``last_error`` and can be re-queued.
    ``msg_id`` is the stable id consumers use to drop repeats (delivery is at-least-once).
    """

    Status = MessageStatus

    msg_id = models.CharField(max_length=64, unique=True)
    msg_type = models.CharField(max_length=64)
    status = models.IntegerField(choices=MessageStatus.choices, default=MessageStatus.NEW)
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="messages")
    transform = models.ForeignKey(Transform, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    processing = models.ForeignKey(Processing, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    workload_id = models.BigIntegerField(null=True, blank=True)
    num_contents = models.IntegerField(default=0)
    body = FastJSONField()
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_to = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # conductor.deliver: the undelivered rows in id order (partial, stays small).
            models.Index(fields=["id"], name="message_outbox", condition=Q(status__in=sorted(MESSAGE_UNDELIVERED))),
            models.Index(fields=["transform", "status", "id"], name="message_transform_status"),
            models.Index(fields=["request", "id"], name="message_request"),
            models.Index(fields=["workload_id", "id"], name="message_workload"),
            models.Index(fields=["msg_type", "id"], name="message_type"),
            models.Index(fields=["status", "delivered_at"], name="message_status_delivered"),
        ]

    def __str__(self) -> str:
        return f"Message {self.pk} {self.msg_type} ({self.get_status_display()})"


class Event(models.Model):
    """One status transition of a request, transform, processing, collection or message."""

    entity = models.CharField(max_length=16)
    entity_id = models.BigIntegerField()
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="events", null=True)
    old_status = models.IntegerField(null=True)
    new_status = models.IntegerField()
    reason = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["request", "id"], name="event_request"),
            models.Index(fields=["entity", "entity_id"], name="event_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.entity_id}: {self.old_status} -> {self.new_status}"
