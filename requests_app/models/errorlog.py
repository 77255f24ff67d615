"""The short error history kept on rows that retry (transforms, processings, HPO points)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

#: The last ten errors are enough to diagnose; the count of attempts lives in ``retries``.
ERRORS_KEPT = 10
#: One message is cut here: a traceback or a remote error page must not bloat the row.
ERROR_CHARS = 2000


def errors_appended(errors: list[dict[str, Any]] | None, message: str, *, key: str = "error") -> list[dict[str, Any]]:
    """``errors`` with ``{"at": now, key: message}`` added, the oldest dropped past ``ERRORS_KEPT``."""
    entry = {"at": timezone.now().isoformat(), key: message[:ERROR_CHARS]}
    return [*(errors or []), entry][-ERRORS_KEPT:]
