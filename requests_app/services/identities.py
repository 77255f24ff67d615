"""Map X.509 subject DNs to users (the ``map_dn`` command and the admin)."""

from __future__ import annotations

from django.db import transaction

from requests_app.auth.x509 import normalise_dn
from requests_app.errors import ApplicationError
from requests_app.models import X509Identity

#: The longest DN stored (the column's size).
MAX_DN_LENGTH = 1024


@transaction.atomic
def x509_identity_map(*, dn: str, user) -> X509Identity:
    """Map ``dn`` (either form, proxy suffixes ignored) to ``user``; a DN mapped before moves to ``user``."""
    normalised = normalise_dn(dn)
    if not normalised.startswith("/") or "=" not in normalised or len(normalised) > MAX_DN_LENGTH:
        raise ApplicationError(f"not a subject DN: {dn!r} (expected /DC=.../CN=... or CN=...,DC=...)")
    identity = X509Identity.objects.select_for_update().filter(dn=normalised).first()
    if identity is None:
        identity = X509Identity(dn=normalised, user=user)
    identity.user = user
    identity.full_clean()
    identity.save()
    return identity


def x509_identity_unmap(*, dn: str) -> int:
    """Remove the mapping of ``dn``; returns how many were removed (0 or 1)."""
    deleted, _ = X509Identity.objects.filter(dn=normalise_dn(dn)).delete()
    return deleted
