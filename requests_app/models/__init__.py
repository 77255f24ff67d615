"""Data model of the service (docs/architecture.md)."""

from __future__ import annotations

from .collections import Collection, Content
from .identities import X509Identity
from .leases import AgentLease
from .messages import Event, Message
from .requests import Request
from .statuses import (
    CollectionRelationType,
    CollectionStatus,
    CollectionType,
    ContentStatus,
    ContentType,
    MessageStatus,
    ProcessingStatus,
    RequestStatus,
    RequestType,
)
from .tokens import ApiToken
from .transforms import Processing, Transform

__all__ = [
    "AgentLease",
    "ApiToken",
    "Collection",
    "CollectionRelationType",
    "CollectionStatus",
    "CollectionType",
    "Content",
    "ContentStatus",
    "ContentType",
    "Event",
    "Message",
    "MessageStatus",
    "Processing",
    "ProcessingStatus",
    "Request",
    "RequestStatus",
    "RequestType",
    "Transform",
    "X509Identity",
]
