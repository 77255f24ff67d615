"""Issue, check and revoke API tokens (``requests_app.models.tokens.ApiToken``).

The key is shown once, when issued; afterwards only its SHA-256 and a short display prefix exist.
``token_authenticate`` is the one check every transport uses (the REST authentication class, and later the
/idds/ wire-protocol adapter).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from requests_app.errors import ApplicationError, ConflictError
from requests_app.models import ApiToken, Request

#: Every key starts with this, so a leaked key is recognisable by secret scanners.
KEY_PREFIX = "idds_"
#: 32 random bytes = 256 bits of entropy (URL-safe base64, 43 characters).
KEY_BYTES = 32
#: Characters shown to tell tokens apart: "idds_" + 8 of the random part (48 bits of 256; the rest stays secret).
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8
#: ``last_used_at`` is written at most this often, so the hot path stays one SELECT.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Longest accepted key; anything longer is refused without hashing.
MAX_KEY_LENGTH = 200


class TokenRefused(ApplicationError):
    """The presented key is unknown, revoked or expired (HTTP 401)."""

    http_status = 401


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: ``key`` is the only copy of the secret, shown once."""

    token: ApiToken
    key: str


def key_hash(raw_key: str) -> str:
    """SHA-256 hex of a key (see ``ApiToken`` for why no slow hash is needed)."""
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


@transaction.atomic
def token_issue(*, user, name: str = "", expires_days: int | None = None, study: Request | None = None) -> IssuedToken:
    """Create a token for ``user`` (scoped to ``study`` when given); the returned key is never stored."""
    if expires_days is not None and expires_days < 1:
        raise ApplicationError("expires_days must be at least 1", extra={"errors": {"expires_days": "at least 1"}})
    if study is not None and study.is_terminal:
        raise ConflictError(f"request {study.pk} has ended ({study.get_status_display()}); no worker token for it")
    key = _new_key()
    now = timezone.now()
    token = ApiToken(
        user=user,
        name=name,
        prefix=key[:DISPLAY_PREFIX_LENGTH],
        key_hash=key_hash(key),
        study=study,
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days is not None else None,
    )
    token.full_clean()
    token.save()
    return IssuedToken(token=token, key=key)


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token; idempotent (the first revocation time is kept)."""
    if token.revoked_at is None:
        now = timezone.now()
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
        token.refresh_from_db(fields=["revoked_at"])
    return token


def token_authenticate(raw_key: str) -> tuple[object, ApiToken] | None:
    """The (user, token) a key belongs to; None when the key is unknown.

    Raises ``TokenRefused`` for a revoked or expired token, or an inactive user, so callers can say why.
    One indexed SELECT (token joined with its user); ``last_used_at`` is written at most once a minute.
    """
    if not raw_key or len(raw_key) > MAX_KEY_LENGTH:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=key_hash(raw_key)).first()
    if token is None:
        return None
    token_accept(token)
    return token.user, token


def token_accept(token: ApiToken) -> None:
    """Refuse a token found by its key (``TokenRefused``) unless it and its user (loaded with it) are active;
    note its use at most once per ``LAST_USED_RESOLUTION``. Every lookup of a key ends here."""
    now = timezone.now()
    state = token.state(now)
    if state != "active":
        raise TokenRefused(f"this token was {state}; ask for a new one")
    if not token.user.is_active:
        raise TokenRefused("the user of this token is inactive")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
