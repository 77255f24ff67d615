"""Fast bulk insert: PostgreSQL COPY when available, ``bulk_create`` otherwise (SQLite demo).

Used for the campaign-sized tables: contents, and the tape simulator's files and locks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model

# Rows per bulk_create statement on databases without COPY (SQLite caps bound variables).
BULK_CREATE_BATCH = 2000


def _copy_value(value: Any) -> str:
    if type(value) is int:
        return str(value)
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    # JSON columns: the dict or list itself is what bulk_create needs on other databases.
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    # COPY text format: backslash, tab and newlines must be escaped.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def insert_rows(
    model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]], *, plain: bool = False
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order, column names as in the table) and return the count.

    COPY moves ~400k narrow rows in about two seconds where ``bulk_create`` needs ten or more.
    ``plain=True`` promises values whose ``str()`` is already valid COPY text (numbers, hex ids,
    ISO timestamps, "t"/"f"): it skips the escaping, a third of the cost for 400k rows.
    """
    if connection.vendor == "postgresql":
        buffer = io.StringIO()
        count = 0
        for row in rows:
            buffer.write("\t".join(map(str, row)) if plain else "\t".join(_copy_value(value) for value in row))
            buffer.write("\n")
            count += 1
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.copy_expert(
                f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN",
                buffer,
            )
        return count
    attnames = {field.column: field.attname for field in model._meta.concrete_fields}
    fields = {field.attname: field for field in model._meta.concrete_fields}
    objects = []
    for row in rows:
        values = {attnames[column]: value for column, value in zip(columns, row, strict=True)}
        if plain:
            # Plain rows carry text ("t", ISO timestamps); each field parses its own.
            values = {name: fields[name].to_python(value) for name, value in values.items()}
        objects.append(model(**values))
    model.objects.bulk_create(objects, batch_size=BULK_CREATE_BATCH)
    return len(objects)
