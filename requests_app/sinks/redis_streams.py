"""The Redis Streams sink: appends outbox messages to one stream (``XADD ... MAXLEN ~ N``).

A whole batch goes in one pipeline round trip; the entry id Redis returns for each ``XADD`` is
the confirmation. Consumers read with consumer groups (``XREADGROUP``/``XACK``), so each group
sees every message and a consumer that crashed re-reads its pending entries. The stream is
trimmed approximately (``~``) to ``IDDS_STREAM_MAXLEN`` entries, which is cheap for Redis and
bounds memory; a consumer group that falls further behind than that loses the oldest entries and
must fall back to the REST pull endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from django.conf import settings

from requests_app.errors import TransientError

from .base import OutgoingMessage, SendReport, Sink
from .encoding import encode_body

logger = logging.getLogger("idds.messages.redis")


def stream_fields(message: OutgoingMessage) -> dict[str, str | bytes]:
    """The entry written for one message: its id (consumers drop repeats by it), type and body."""
    return {
        "msg_id": message.msg_id,
        "msg_type": message.msg_type,
        "body": encode_body(message.body),
    }


class RedisStreamSink(Sink):
    """Appends to stream ``IDDS_STREAM_NAME`` on ``IDDS_STREAM_REDIS_URL``."""

    name = "redis"

    def __init__(self, *, url: str | None = None, stream: str | None = None, maxlen: int | None = None) -> None:
        if url is None or stream is None or maxlen is None:
            url = settings.IDDS_STREAM_REDIS_URL if url is None else url
            stream = settings.IDDS_STREAM_NAME if stream is None else stream
            maxlen = settings.IDDS_STREAM_MAXLEN if maxlen is None else maxlen
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        # Timeouts so that a hung Redis turns into a retry instead of a stuck conductor.
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)

    def send(self, messages: Sequence[OutgoingMessage]) -> SendReport:
        """XADD every message in one pipeline; the returned entry ids confirm them."""
        report = SendReport()
        if not messages:
            return report
        pipeline = self._client.pipeline(transaction=False)
        accepted: list[OutgoingMessage] = []
        for message in messages:
            try:
                fields = stream_fields(message)
            except (TypeError, ValueError) as exc:
                report.failed[message.msg_id] = f"body is not JSON: {exc}"
                report.permanent.add(message.msg_id)
                continue
            pipeline.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
            accepted.append(message)
        try:
            results = pipeline.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientError(f"Redis stream {self.stream!r} at {self._client_address()}: {exc}") from exc
        for message, result in zip(accepted, results, strict=True):
            if isinstance(result, Exception):
                report.failed[message.msg_id] = f"XADD refused: {result}"
            else:
                report.delivered.add(message.msg_id)
        return report

    def close(self) -> None:
        self._client.close()

    def _client_address(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
