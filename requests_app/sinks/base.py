"""The message-sink interface the conductor delivers through (docs/architecture.md, "The parts").

A sink gets a batch of outbox messages in outbox order and reports, per message, whether the far
side confirmed it (a STOMP receipt, an XADD id). The conductor marks a message Delivered only when
every configured sink confirmed it; anything else is retried with back-off (at-least-once:
consumers drop repeats by ``msg_id``). Raising ``TransientError`` means "nothing confirmed".
Sinks are created once per worker process and reused, so they may keep connections open.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OutgoingMessage:
    msg_id: str
    msg_type: str
    # The JSON text as stored (the conductor skips decoding and re-encoding it), or a dict.
    body: dict[str, Any] | str
    request_id: int
    transform_id: int | None
    workload_id: int | None


@dataclass
class SendReport:
    delivered: set[str] = field(default_factory=set)
    # msg_id -> reason; ``permanent`` lists those the far side refused for good (poison).
    failed: dict[str, str] = field(default_factory=dict)
    permanent: set[str] = field(default_factory=set)


class Sink(ABC):
    name: str = "sink"

    @abstractmethod
    def send(self, messages: Sequence[OutgoingMessage]) -> SendReport: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (worker shutdown, tests)."""
