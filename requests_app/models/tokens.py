"""API tokens, stored hashed: a copy of the database lets no one in."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiToken(models.Model):
    """A bearer credential of one user, optionally scoped to one study (a *worker token*).

    Only the SHA-256 of the key is kept. The key is 256 random bits (``requests_app.auth.tokens``), so no
    slow password hash is needed: there is nothing to guess a dictionary against, and a brute force over
    2**256 keys is out of reach whatever the hash costs. A fast hash keeps authentication one indexed
    SELECT. ``prefix`` (the first characters of the key) is shown in lists and the admin to tell tokens
    apart; it is not enough to use the token.

    A token with ``study`` set may only work the points of that one request's study (checkout, heartbeat,
    report, fail, release, and reading the study): a pilot never carries its owner's full token.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64)
    study = models.ForeignKey(
        "requests_app.Request", null=True, blank=True, on_delete=models.CASCADE, related_name="worker_tokens"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # token_authenticate: the one indexed lookup of every authenticated call.
            models.UniqueConstraint(fields=["key_hash"], name="api_token_key_hash_unique"),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("created_at")),
                name="api_token_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        scope = f" for study {self.study_id}" if self.study_id else ""
        return f"{self.prefix}… of user {self.user_id}{scope}"

    @property
    def is_worker_token(self) -> bool:
        """Scoped to one study."""
        return self.study_id is not None

    def state(self, now: datetime | None = None) -> str:
        """ "active", "revoked" or "expired"."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
