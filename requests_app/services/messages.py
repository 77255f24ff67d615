"""Outbox messages in the shapes consumers match on (docs/idds-reference.md §2).

Messages are written in the caller's transaction, so a message exists exactly when the state
change it announces was committed; the conductor is woken after commit.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from requests_app import handoffs
from requests_app.models import Collection, Message, Transform
from requests_app.models.statuses import CollectionRelationType, CollectionStatus, ContentStatus

# Consumers (JEDI) accept at most 2000 files per message.
FILES_PER_MESSAGE = 2000


class FileEntry(TypedDict):
    scope: str
    name: str
    path: str | None
    status: str


def new_msg_id() -> str:
    return uuid.uuid4().hex


def _relation_label(relation: int) -> str:
    return CollectionRelationType(relation).label.lower()


def file_messages(
    *, transform: Transform, work_type_name: str, collection: Collection, files: Sequence[FileEntry]
) -> list[Message]:
    """Unsaved file messages for ``files``, split into chunks of at most 2000."""
    workload_id = transform.workload_id
    messages = []
    for start in range(0, len(files), FILES_PER_MESSAGE):
        chunk = list(files[start : start + FILES_PER_MESSAGE])
        msg_type = f"file_{work_type_name}"
        body = {
            "msg_type": msg_type,
            "workload_id": workload_id,
            "request_id": transform.request_id,
            "transform_id": transform.pk,
            "relation_type": _relation_label(collection.relation_type),
            "files": chunk,
        }
        messages.append(
            Message(
                msg_id=new_msg_id(),
                msg_type=msg_type,
                request_id=transform.request_id,
                transform=transform,
                collection=collection,
                workload_id=workload_id,
                num_contents=len(chunk),
                body=body,
            )
        )
    return messages


def collection_message(
    *, transform: Transform, work_type_name: str, collections: Iterable[Collection], output: Any = None
) -> Message:
    collections = list(collections)
    msg_type = f"collection_{work_type_name}"
    relation = collections[0].relation_type if collections else CollectionRelationType.OUTPUT
    body = {
        "msg_type": msg_type,
        "workload_id": transform.workload_id,
        "request_id": transform.request_id,
        "transform_id": transform.pk,
        "relation_type": _relation_label(relation),
        "collections": [
            {"scope": c.scope, "name": c.name, "status": CollectionStatus(c.status).label} for c in collections
        ],
        "output": output,
    }
    return Message(
        msg_id=new_msg_id(),
        msg_type=msg_type,
        request_id=transform.request_id,
        transform=transform,
        collection=collections[0] if collections else None,
        workload_id=transform.workload_id,
        num_contents=len(collections),
        body=body,
    )


def messages_write(messages: list[Message]) -> list[Message]:
    """Insert outbox rows in the current transaction and wake the conductor after commit."""
    if not messages:
        return messages
    created = Message.objects.bulk_create(messages, batch_size=500)
    handoffs.messages_written()
    return created


def file_entry(scope: str, name: str, path: str | None, status: int) -> FileEntry:
    return {"scope": scope, "name": name, "path": path, "status": _status_label(status)}


@functools.cache
def _status_label(status: int) -> str:
    # Called once per announced file: the enum lookup is cached (a handful of statuses).
    return ContentStatus(status).label
