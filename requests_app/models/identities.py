"""X.509 identities: which user a certificate's subject DN (forwarded by the TLS front end) acts as."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class X509Identity(models.Model):
    """One subject DN mapped to one user; ``dn`` is stored normalised (``requests_app.auth.x509.normalise_dn``).

    Several DNs may map to one user (a renewed certificate, a robot certificate); a DN maps to one user only.
    """

    dn = models.CharField(max_length=1024, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="x509_identities")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "X.509 identity"
        verbose_name_plural = "X.509 identities"
        ordering = ["dn"]

    def __str__(self) -> str:
        return f"{self.dn} -> {self.user}"
