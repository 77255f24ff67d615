"""Collection and Content: datasets and their files (or HPO points, AL outputs)."""

from __future__ import annotations

from django.db import models

from .requests import Request
from .statuses import (
    CONTENT_TERMINAL,
    CollectionRelationType,
    CollectionStatus,
    CollectionType,
    ContentStatus,
    ContentType,
)
from .transforms import Transform


class Collection(models.Model):
    """A dataset in one role (input, output, log) of a transform.

    The counters are maintained in bulk by ``services.contents`` in the same transaction as the
    content changes, so pages and roll-ups never COUNT(*) millions of rows.
    """

    Status = CollectionStatus
    Relation = CollectionRelationType

    transform = models.ForeignKey(Transform, on_delete=models.CASCADE, related_name="collections")
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="collections")
    relation_type = models.IntegerField(choices=CollectionRelationType.choices)
    coll_type = models.IntegerField(choices=CollectionType.choices, default=CollectionType.DATASET)
    scope = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    status = models.IntegerField(choices=CollectionStatus.choices, default=CollectionStatus.NEW)
    total_files = models.IntegerField(default=0)
    processed_files = models.IntegerField(default=0)
    failed_files = models.IntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    processed_bytes = models.BigIntegerField(default=0)
    coll_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["transform", "relation_type"], name="collection_transform_rel"),
            models.Index(fields=["scope", "name"], name="collection_scope_name"),
            models.Index(fields=["request"], name="collection_request"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.name} ({self.get_relation_type_display()})"


class Content(models.Model):
    """One file of a collection (or one HPO point). ``name`` is unique within its collection."""

    Status = ContentStatus

    # No index of its own: the (collection, name) and (collection, status, id) indexes below both
    # start with it, and a third index on the hottest insert/update path slowed both by ~40 %.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="contents", db_index=False)
    scope = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    content_type = models.IntegerField(choices=ContentType.choices, default=ContentType.FILE)
    status = models.IntegerField(choices=ContentStatus.choices, default=ContentStatus.NEW)
    bytes = models.BigIntegerField(default=0)
    adler32 = models.CharField(max_length=16, blank=True, default="")
    path = models.TextField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    retries = models.IntegerField(default=0)
    # When the content reached its current status: release latency and landing order use it.
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Contents of a collection by status (API filter, work-type polls, retries).
            models.Index(fields=["collection", "status", "id"], name="content_coll_status"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["collection", "name"], name="content_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.name}"

    @property
    def is_terminal(self) -> bool:
        return self.status in CONTENT_TERMINAL
