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
from requests_app.models import Collection, Content, Message, Transform
from requests_app.models.statuses import CollectionRelationType, CollectionStatus, ContentStatus

# Consumers (JEDI) accept at most 2000 files per message.
FILES_PER_MESSAGE = 2000
# What a collection message says when the work ended, however it ended: JEDI acts only on "Closed" (it then
# releases every file still staging), so "SubClosed", "Failed" or silence would leave its dataset waiting for
# ever. The collection's own status (SubClosed, Failed, Cancelled) stays in the API and the monitor, and the
# message's ``error`` says how the work really ended (docs/messages.md).
ENDED_COLLECTION_STATUS = CollectionStatus.CLOSED.label


class FileEntry(TypedDict):
    """One file of a file message; the id keys are the original's (consumers match on scope and name)."""

    scope: str
    name: str
    path: str | None
    status: str
    map_id: int | None
    content_id: int | None
    external_coll_id: None
    external_content_id: None


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
        chunk = _with_content_ids(collection, list(files[start : start + FILES_PER_MESSAGE]))
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


def _with_content_ids(collection: Collection, chunk: list[FileEntry]) -> list[FileEntry]:
    """Fill ``content_id`` / ``map_id`` of entries made without them, in one indexed query per chunk."""
    missing = [entry["name"] for entry in chunk if entry["content_id"] is None]
    if not missing or collection.pk is None:
        return chunk
    ids = dict(Content.objects.filter(collection=collection, name__in=missing).values_list("name", "id"))
    for entry in chunk:
        if entry["content_id"] is None and entry["name"] in ids:
            entry["content_id"] = entry["map_id"] = ids[entry["name"]]
    return chunk


def collection_message(
    *,
    transform: Transform,
    work_type_name: str,
    collections: Iterable[Collection],
    output: Any = None,
    error: Any = None,
) -> Message:
    """The message announcing that the work on ``collections`` ended: always "Closed", see above."""
    collections = list(collections)
    msg_type = f"collection_{work_type_name}"
    relation = collections[0].relation_type if collections else CollectionRelationType.OUTPUT
    body = {
        "msg_type": msg_type,
        "workload_id": transform.workload_id,
        "request_id": transform.request_id,
        "transform_id": transform.pk,
        "relation_type": _relation_label(relation),
        "collections": [{"scope": c.scope, "name": c.name, "status": ENDED_COLLECTION_STATUS} for c in collections],
        "output": output,
        "error": error,
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


def file_entry(scope: str, name: str, path: str | None, status: int, content_id: int | None = None) -> FileEntry:
    """A file entry; without ``content_id`` the id is looked up when the message is built.

    ``map_id`` is the content id (unique within the transform, as the original's map id is); this service keeps
    no external ids, so those keys are null.
    """
    return {
        "scope": scope,
        "name": name,
        "path": path,
        "status": _status_label(status),
        "map_id": content_id,
        "content_id": content_id,
        "external_coll_id": None,
        "external_content_id": None,
    }


@functools.cache
def _status_label(status: int) -> str:
    # Called once per announced file: the enum lookup is cached (a handful of statuses).
    return ContentStatus(status).label
