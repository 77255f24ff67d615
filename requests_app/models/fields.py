"""Model fields of our own."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.postgresql.psycopg_any import Jsonb

from requests_app.sinks.encoding import json_bytes


def json_text(value: Any) -> str:
    """Compact JSON text of ``value`` (see json_bytes), as psycopg2's Json adapter wants it."""
    return json_bytes(value).decode()


class FastJSONField(models.JSONField):
    """A JSONField encoded by orjson on PostgreSQL.

    Outbox bodies carry up to 2000 file entries (~0.3 MB each); the standard encoder was most of
    the time the carrier spent writing them.
    """

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if connection.vendor != "postgresql" or self.encoder is not None:
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        return Jsonb(value, dumps=json_text)
