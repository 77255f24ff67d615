"""The one place where statuses change: checked against the tables next to the models.

Single rows move by compare-and-swap (``UPDATE ... WHERE status = <the status we saw>``), so two
workers racing on one row cannot both win, and every move appends an ``Event``. Contents move in
bulk: the WHERE clause lists the statuses the table allows a move from, so an illegal bulk move
simply matches no row.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.utils import timezone

from requests_app.errors import ConflictError, IllegalTransition
from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    COLLECTION_TRANSITIONS,
    CONTENT_TRANSITIONS,
    MESSAGE_TRANSITIONS,
    PROCESSING_TRANSITIONS,
    REQUEST_TRANSITIONS,
)

TABLES: dict[type[models.Model], dict[int, frozenset[int]]] = {
    Request: REQUEST_TRANSITIONS,
    Transform: REQUEST_TRANSITIONS,
    Processing: PROCESSING_TRANSITIONS,
    Collection: COLLECTION_TRANSITIONS,
    Message: MESSAGE_TRANSITIONS,
    Content: CONTENT_TRANSITIONS,
}
# Attempts before giving up when other writers keep changing the row under us.
CAS_ATTEMPTS = 5


def _label(obj: models.Model, status: int) -> str:
    field = obj._meta.get_field("status")
    return dict(field.choices).get(status, str(status))


def check_transition(obj: models.Model, new_status: int) -> None:
    """Raise IllegalTransition if ``obj`` may not move from its status to ``new_status``."""
    table = TABLES[type(obj)]
    if new_status not in table.get(obj.status, frozenset()):
        entity = type(obj).__name__.lower()
        raise IllegalTransition(
            f"cannot move {entity} {obj.pk} from {_label(obj, obj.status)} to {_label(obj, new_status)}",
            extra={"current_status": _label(obj, obj.status), "requested_status": _label(obj, new_status)},
        )


def _request_id_of(obj: models.Model) -> int | None:
    if isinstance(obj, Request):
        return obj.pk
    return getattr(obj, "request_id", None)


def transition(
    obj: models.Model, new_status: int, *, reason: str = "", actor: str = "", fields: dict[str, Any] | None = None
) -> bool:
    """Move ``obj`` to ``new_status``; return False when it is already there (idempotent).

    ``fields`` are written in the same UPDATE. Raises IllegalTransition for a move the table
    forbids and ConflictError if the row keeps changing under us.
    """
    model = type(obj)
    extra = dict(fields or {})
    for _ in range(CAS_ATTEMPTS):
        old_status = obj.status
        if old_status == new_status:
            return False
        check_transition(obj, new_status)
        now = timezone.now()
        if any(f.name == "updated_at" for f in model._meta.concrete_fields):
            extra["updated_at"] = now
        # One transaction for the move and its event: they commit together, and outside a
        # caller's transaction that is one commit (one WAL flush) instead of two; inside one, no
        # savepoint (an error here aborts the caller's transaction anyway).
        with transaction.atomic(savepoint=False):
            changed = model._default_manager.filter(pk=obj.pk, status=old_status).update(status=new_status, **extra)
            if changed == 1:
                Event.objects.create(
                    entity=model.__name__.lower(),
                    entity_id=obj.pk,
                    request_id=_request_id_of(obj),
                    old_status=old_status,
                    new_status=new_status,
                    reason=reason[:2000],
                    actor=actor[:255],
                )
        if changed == 1:
            obj.status = new_status
            for name, value in extra.items():
                setattr(obj, name, value)
            return True
        obj.refresh_from_db(fields=["status"])
    raise ConflictError(f"{model.__name__.lower()} {obj.pk} kept changing; try again")


def sources_for(model: type[models.Model], new_status: int) -> frozenset[int]:
    """Statuses from which ``model`` rows may move to ``new_status``."""
    return frozenset(src for src, targets in TABLES[model].items() if new_status in targets)


def bulk_transition(queryset: models.QuerySet, new_status: int, **fields: Any) -> int:
    """Move many rows at once (contents, delivered messages): one UPDATE whose WHERE clause only
    matches rows the table lets move, so an illegal move changes nothing. No event rows: the
    collection counters and the outbox are the record of bulk moves. Returns rows changed."""
    model = queryset.model
    if any(f.name == "updated_at" for f in model._meta.concrete_fields):
        fields.setdefault("updated_at", timezone.now())
    return queryset.filter(status__in=sources_for(model, new_status)).update(status=new_status, **fields)
