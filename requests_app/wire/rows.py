"""Rows as the client reads them: iDDS field names, enum objects, RFC-1123 dates."""

from __future__ import annotations

from typing import Any

from requests_app.models import Collection, Content, Processing, Request, Transform
from requests_app.models.statuses import (
    CollectionRelationType,
    CollectionStatus,
    CollectionType,
    ContentStatus,
    ContentType,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)

from .encoding import enum_object, wire_date


def request_row(request: Request, *, with_metadata: bool = False) -> dict[str, Any]:
    row = {
        "request_id": request.pk,
        "scope": request.scope,
        "name": request.name,
        "requester": request.requester,
        "request_type": enum_object(RequestType, request.request_type),
        "transform_tag": request.transform_tag,
        "workload_id": request.workload_id,
        "priority": request.priority,
        "status": enum_object(RequestStatus, request.status),
        # This service has no separate sub-status; iDDS clients read it as the status again.
        "substatus": enum_object(RequestStatus, request.status),
        "lifetime": request.lifetime,
        "created_at": wire_date(request.created_at),
        "updated_at": wire_date(request.updated_at),
        "expired_at": wire_date(request.expired_at),
        "errors": request.errors,
    }
    if with_metadata:
        row["request_metadata"] = request.request_metadata
        row["processing_metadata"] = request.processing_metadata
    return row


def transform_row(request: Request, transform: Transform | None, output: Collection | None) -> dict[str, Any]:
    """A request row widened with one transform and its output collection (``get_status`` with detail).

    A request not planned yet (no transform) still gets its row, with the transform's fields null.
    """
    row = {
        "request_id": request.pk,
        "workload_id": request.workload_id,
        "scope": request.scope,
        "name": request.name,
        "status": enum_object(RequestStatus, request.status),
        "errors": request.errors,
        "transform_id": None,
        "transform_workload_id": None,
        "transform_type": None,
        "transform_status": None,
        "transform_created_at": None,
        "transform_updated_at": None,
        "transform_finished_at": None,
    }
    if transform is not None:
        row.update(
            transform_id=transform.pk,
            transform_workload_id=transform.workload_id,
            transform_type=enum_object(RequestType, transform.transform_type, "TransformType"),
            transform_status=enum_object(RequestStatus, transform.status, "TransformStatus"),
            transform_created_at=wire_date(transform.created_at),
            transform_updated_at=wire_date(transform.updated_at),
            transform_finished_at=wire_date(transform.finished_at),
        )
    return {**row, **_output_fields(output)}


def _output_fields(output: Collection | None) -> dict[str, Any]:
    if output is None:
        return {
            "output_coll_scope": None,
            "output_coll_name": None,
            "output_coll_status": None,
            "output_total_files": 0,
            "output_processed_files": 0,
            "output_failed_files": 0,
            "output_processing_files": 0,
        }
    return {
        "output_coll_scope": output.scope,
        "output_coll_name": output.name,
        "output_coll_status": enum_object(CollectionStatus, output.status),
        "output_total_files": output.total_files,
        "output_processed_files": output.processed_files,
        "output_failed_files": output.failed_files,
        "output_processing_files": output.total_files - output.processed_files - output.failed_files,
    }


def processing_row(processing: Processing) -> dict[str, Any]:
    return {
        "processing_id": processing.pk,
        "processing_status": enum_object(ProcessingStatus, processing.status),
        "processing_created_at": wire_date(processing.created_at),
        "processing_updated_at": wire_date(processing.updated_at),
    }


def collection_row(collection: Collection) -> dict[str, Any]:
    return {
        "coll_id": collection.pk,
        "request_id": collection.request_id,
        "transform_id": collection.transform_id,
        "workload_id": collection.transform.workload_id,
        "scope": collection.scope,
        "name": collection.name,
        "relation_type": enum_object(CollectionRelationType, collection.relation_type),
        "coll_type": enum_object(CollectionType, collection.coll_type),
        "status": enum_object(CollectionStatus, collection.status),
        "total_files": collection.total_files,
        "processed_files": collection.processed_files,
        "failed_files": collection.failed_files,
        "bytes": collection.bytes,
        "coll_metadata": collection.coll_metadata,
        "created_at": wire_date(collection.created_at),
        "updated_at": wire_date(collection.updated_at),
    }


def content_row(content: Content) -> dict[str, Any]:
    collection = content.collection
    return {
        "content_id": content.pk,
        "coll_id": collection.pk,
        "request_id": collection.request_id,
        "transform_id": collection.transform_id,
        "workload_id": collection.transform.workload_id,
        "scope": content.scope,
        "name": content.name,
        "content_type": enum_object(ContentType, content.content_type),
        "status": enum_object(ContentStatus, content.status),
        "bytes": content.bytes,
        "adler32": content.adler32,
        "path": content.path,
        "retries": content.retries,
        "created_at": wire_date(content.created_at),
        "updated_at": wire_date(content.updated_at),
    }
