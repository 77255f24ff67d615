"""Who is calling: hashed API tokens, study-scoped worker tokens, and the service user of commands."""

from __future__ import annotations
