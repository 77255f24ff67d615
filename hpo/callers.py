"""A caller's API token, its user and the HPO study a call names, in one query (the point verbs' hot path).

The native API (``hpo.api.lean``) and the iDDS client's /idds/hpo calls (``hpo.wire``) each authenticated a
token and then looked the study up: two round trips to the database before the work, on calls whose work is
one statement. This finds both at once, as ``token_authenticate`` and ``hpo.study_selectors.studies`` would
(every field loaded, nothing deferred); the caller still applies ``token_accept`` and its own access rules.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from requests_app.auth.tokens import MAX_KEY_LENGTH, key_hash
from requests_app.models import ApiToken, Request, Transform
from requests_app.models.statuses import RequestType
from requests_app.services.prepared import PreparedStatement

#: Largest id a bigint column holds; a larger id names nothing (and must not reach PostgreSQL).
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class TokenAndStudy:
    """The token found by its key (with its user loaded), and the request's HPO study (with its request) or None."""

    token: ApiToken
    user: Any
    study: Transform | None


@functools.cache
def _models() -> tuple:
    return (ApiToken, get_user_model(), Transform, Request)


@functools.cache
def _fields(model) -> tuple[list, list[str]]:
    """The model's loaded fields and their attribute names (a call on the hot path: built once)."""
    fields = list(model._meta.concrete_fields)
    return fields, [field.attname for field in fields]


def _select(alias: str, model) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in _fields(model)[0])


@functools.cache
def _statement() -> PreparedStatement:
    # The study as a scalar subquery, not a LATERAL join: the same index walk on PostgreSQL, and the
    # embedded SQLite default runs it too. Prepared: planning it took five times as long as running it.
    token, user, transform, request = _models()
    return PreparedStatement(
        "idds_token_and_study",
        f"SELECT {_select('tok', token)}, {_select('usr', user)}, {_select('tr', transform)}, "
        f"{_select('rq', request)} "
        f"FROM {token._meta.db_table} tok JOIN {user._meta.db_table} usr ON usr.id = tok.user_id "
        f"LEFT JOIN {transform._meta.db_table} tr ON tr.id = (SELECT id FROM {transform._meta.db_table} "
        f"WHERE request_id = %(request)s AND transform_type = %(type)s ORDER BY id LIMIT 1) "
        f"LEFT JOIN {request._meta.db_table} rq ON rq.id = tr.request_id "
        f"WHERE tok.key_hash = %(hash)s",
    )


def _instances(row: tuple) -> list:
    """The row split into model instances, each loaded as the ORM loads it (its fields' converters applied)."""
    built = []
    start = 0
    for model in _models():
        fields, attnames = _fields(model)
        values = [
            field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
            for field, value in zip(fields, row[start : start + len(fields)], strict=True)
        ]
        start += len(fields)
        built.append(model.from_db(connection.alias, attnames, values) if values[0] else None)
    return built


def token_and_study(raw_key: str, request_id: int) -> TokenAndStudy | None:
    """The token of ``raw_key`` and the HPO study of request ``request_id``; None when the key is unknown."""
    if not raw_key or len(raw_key) > MAX_KEY_LENGTH or not 0 <= request_id <= MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            _statement().sql_for_call(),
            {"request": request_id, "type": RequestType.HYPER_PARAMETER_OPT, "hash": key_hash(raw_key)},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    token, user, transform, request = _instances(row)
    token.user = user
    if transform is not None:
        transform.request = request
    return TokenAndStudy(token=token, user=user, study=transform)
