"""Carry DRF's clear-text tokens (``authtoken_token``) over as hashed ``ApiToken`` rows, then drop that table.

Clients keep their keys; the database no longer holds them. Fresh databases have no such table: nothing to do.
"""

from __future__ import annotations

import hashlib

from django.db import migrations

OLD_TABLE = "authtoken_token"
#: Old DRF keys are 40 hex characters; this many are kept for display.
OLD_PREFIX_LENGTH = 8


def hash_old_tokens(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("requests_app", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")
        rows = cursor.fetchall()
    ApiToken.objects.bulk_create(
        [
            ApiToken(
                user_id=user_id,
                name="carried over from rest_framework.authtoken",
                prefix=key[:OLD_PREFIX_LENGTH],
                key_hash=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created,
            )
            for key, user_id, created in rows
        ]
    )
    # The clear-text keys are what must go; the app is no longer installed, so nothing else will drop it.
    schema_editor.execute(f"DROP TABLE {OLD_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0005_api_tokens")]

    operations = [migrations.RunPython(hash_old_tokens, migrations.RunPython.noop)]
