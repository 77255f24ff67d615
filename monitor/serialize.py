"""Rows of the monitor's tables as plain dicts: the JSON twins and the templates read the same."""

from __future__ import annotations

from typing import Any

from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import (
    CollectionStatus,
    ContentStatus,
    MessageStatus,
    ProcessingStatus,
    RequestStatus,
)

#: Event.entity -> the status set its integers belong to.
_EVENT_STATUSES = {
    "request": RequestStatus,
    "transform": RequestStatus,
    "processing": ProcessingStatus,
    "collection": CollectionStatus,
    "message": MessageStatus,
    "content": ContentStatus,
}


def _label(choices, value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return choices(value).label
    except ValueError:
        return str(value)


def request_row(request: Request) -> dict[str, Any]:
    """The original table's columns (the annotations of ``selectors.request_table``)."""
    return {
        "request_id": request.pk,
        "scope": request.scope,
        "name": request.name,
        "status": request.get_status_display(),
        "transform_status": _label(RequestStatus, getattr(request, "transform_status", None)),
        "in_status": _label(CollectionStatus, getattr(request, "in_status", None)),
        "in_total_files": getattr(request, "in_total_files", None),
        "in_processed_files": getattr(request, "in_processed_files", None),
        "out_status": _label(CollectionStatus, getattr(request, "out_status", None)),
        "out_total_files": getattr(request, "out_total_files", None),
        "out_processed_files": getattr(request, "out_processed_files", None),
        "type": request.get_request_type_display(),
        "workload_id": request.workload_id,
        "requester": request.requester,
        "created": request.created_at,
        "updated": request.updated_at,
    }


def transform_row(transform: Transform) -> dict[str, Any]:
    return {
        "transform_id": transform.pk,
        "type": transform.get_transform_type_display(),
        "status": transform.get_status_display(),
        "workload_id": transform.workload_id,
        "retries": transform.retries,
        "created": transform.created_at,
        "updated": transform.updated_at,
        "finished": transform.finished_at,
        "errors": transform.errors,
    }


def processing_row(processing: Processing) -> dict[str, Any]:
    return {
        "processing_id": processing.pk,
        "transform_id": processing.transform_id,
        "status": processing.get_status_display(),
        "external_id": processing.external_id,
        "poll_count": processing.poll_count,
        "retries": processing.retries,
        "submitted": processing.submitted_at,
        "finished": processing.finished_at,
        "errors": processing.errors,
    }


def collection_row(collection: Collection) -> dict[str, Any]:
    return {
        "collection_id": collection.pk,
        "relation": collection.get_relation_type_display(),
        "scope": collection.scope,
        "name": collection.name,
        "status": collection.get_status_display(),
        "total_files": collection.total_files,
        "processed_files": collection.processed_files,
        "failed_files": collection.failed_files,
        "bytes": collection.bytes,
        "processed_bytes": collection.processed_bytes,
    }


def content_row(content: Content) -> dict[str, Any]:
    return {
        "content_id": content.pk,
        "scope": content.scope,
        "name": content.name,
        "status": content.get_status_display(),
        "bytes": content.bytes,
        "retries": content.retries,
        "status_changed": content.status_changed_at,
        "updated": content.updated_at,
    }


def event_row(event: Event) -> dict[str, Any]:
    choices = _EVENT_STATUSES.get(event.entity, RequestStatus)
    return {
        "event_id": event.pk,
        "request_id": event.request_id,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "old_status": _label(choices, event.old_status),
        "new_status": _label(choices, event.new_status),
        "reason": event.reason,
        "actor": event.actor,
        "at": event.created_at,
    }


def message_row(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.pk,
        "msg_id": message.msg_id,
        "msg_type": message.msg_type,
        "status": message.get_status_display(),
        "num_contents": message.num_contents,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "created": message.created_at,
        "delivered": message.delivered_at,
    }
