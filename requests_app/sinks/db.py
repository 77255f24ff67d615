"""The recording sink: a message counts as delivered once it is logged; the row keeps the rest."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .base import OutgoingMessage, SendReport, Sink

logger = logging.getLogger("idds.messages")


class DatabaseSink(Sink):
    """Delivery recorded in the database (``delivered_to``/``delivered_at``) and the log only;
    consumers pull such messages over REST (``/api/v1/messages/`` after a cursor)."""

    name = "db"

    def send(self, messages: Sequence[OutgoingMessage]) -> SendReport:
        for message in messages:
            logger.info(
                "message %s %s request=%s workload=%s",
                message.msg_id,
                message.msg_type,
                message.request_id,
                message.workload_id,
            )
        return SendReport(delivered={message.msg_id for message in messages})
