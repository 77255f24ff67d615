"""Named leases: "only one worker does this at a time", without a lock a dead worker keeps."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

#: The lease of the one conductor that delivers the outbox at a time.
CONDUCTOR_LEASE = "conductor"


class AgentLease(models.Model):
    """A lease on a named job (e.g. ``conductor``). It expires by itself, so a worker that died
    while holding it blocks nobody for longer than ``seconds``."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=255, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'}"

    @classmethod
    def acquire(cls, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease by compare-and-swap; True when ``holder`` now has it."""
        now = timezone.now()
        until = now + timedelta(seconds=seconds)
        free = Q(expires_at__isnull=True) | Q(expires_at__lt=now) | Q(holder=holder)
        if cls.objects.filter(free, name=name).update(holder=holder, expires_at=until):
            return True
        try:
            with transaction.atomic():
                cls.objects.create(name=name, holder=holder, expires_at=until)
        except IntegrityError:
            return False
        return True

    @classmethod
    def is_held(cls, name: str) -> bool:
        """Whether someone holds the lease now (an expired lease counts as free)."""
        return cls.objects.filter(name=name, expires_at__gte=timezone.now()).exclude(holder="").exists()

    @classmethod
    def release(cls, name: str, holder: str) -> None:
        cls.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)
