"""HPO state beside the core tables: point leases and generator runs.

A point is a ``Content`` of the study's output collection (name "0", "1", ...; ``details`` holds parameters,
loss, metrics and provenance). What the core tables have no place for lives here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from requests_app.models import ApiToken, Content, Processing, Transform


class PointLease(models.Model):
    """A point checked out to a named worker of one principal until ``expires_at``; heartbeats push the expiry.

    An expired lease returns the point to the pool (``hpo.sweeps.leases_expire``), so a worker that died
    holds nothing for longer than its lease.
    """

    content = models.OneToOneField(Content, on_delete=models.CASCADE, primary_key=True, related_name="hpo_lease")
    transform = models.ForeignKey(Transform, on_delete=models.CASCADE, related_name="hpo_leases")
    worker = models.CharField(max_length=255)
    # The principal that took the lease: only it may heartbeat, report, fail or release the point
    # (a worker name alone proves nothing; any caller can name any worker).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    worker_token = models.ForeignKey(ApiToken, null=True, on_delete=models.SET_NULL, related_name="+")
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    heartbeats = models.IntegerField(default=0)

    class Meta:
        indexes = [
            # leases_expire: the sweep looks for expired leases across all studies.
            models.Index(fields=["expires_at"], name="hpo_lease_expiry"),
            models.Index(fields=["transform", "worker"], name="hpo_lease_worker"),
        ]

    def __str__(self) -> str:
        return f"point {self.content_id} leased to {self.worker} until {self.expires_at:%H:%M:%S}"

    @classmethod
    def granted(
        cls, content: Content, *, transform_id: int, worker: str, principal, leased_at, expires_at
    ) -> PointLease:
        """An unsaved fresh lease of ``content`` to ``worker`` of ``principal`` (both checkout paths build them)."""
        return cls(
            content=content,
            transform_id=transform_id,
            worker=worker,
            user_id=principal.user_id,
            worker_token_id=principal.worker_token_id,
            leased_at=leased_at,
            expires_at=expires_at,
            heartbeats=0,
        )


class Generation(models.Model):
    """The outcome of one generator run (one processing): its points, or why it failed.

    Kept apart from ``processing_metadata`` because the generator task finishes concurrently with the carrier
    committing the processing's submission; separate rows mean neither write can overwrite the other.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    processing = models.OneToOneField(
        Processing, on_delete=models.CASCADE, primary_key=True, related_name="hpo_generation"
    )
    transform = models.ForeignKey(Transform, on_delete=models.CASCADE, related_name="hpo_generations")
    number = models.IntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    points = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["transform", "number"]

    def __str__(self) -> str:
        return f"generation {self.number} of transform {self.transform_id} ({self.status})"


class IntermediateValue(models.Model):
    """A value a worker reported for a point while evaluating it (``step``: epoch, iteration, ...).

    Read by the early-stopping rules (``hpo.early_stopping``): all values of one study at one step.
    """

    content = models.ForeignKey(Content, on_delete=models.CASCADE, related_name="hpo_intermediate_values")
    transform = models.ForeignKey(Transform, on_delete=models.CASCADE, related_name="hpo_intermediate_values")
    step = models.BigIntegerField()
    value = models.FloatField()
    reported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["content", "step"], name="hpo_intermediate_once_per_step"),
        ]
        indexes = [
            # point_intermediate: the rules compare the values of every point of a study at one step.
            models.Index(fields=["transform", "step"], name="hpo_intermediate_step"),
        ]

    def __str__(self) -> str:
        return f"point {self.content_id} step {self.step}: {self.value}"
