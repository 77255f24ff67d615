"""kombu's Redis transport with one repair: a worker survives a Redis restart under load.

Found on campaigns with a Redis restart in the middle (celery/kombu 5.7.0, redis-py 8.1): the
worker logged "Connection to broker lost", then died with "Unrecoverable error:
AttributeError('NoneType' object has no attribute 'hostname')". The sequence, read in the
installed sources:

1. ``Consumer.on_connection_error_after_connected`` first calls ``connection.collect()``. That
   closes the default channel, whose ``Channel.close`` reads the pending BRPOP reply first; with
   Redis gone the read raises ``ConnectionError`` before the channel is marked closed (swallowed
   by ``maybe_close_channel``). ``collect`` then detaches the transport: ``transport.client = None``.
2. It then calls ``connection.close()``, which closes the same (still open) channel again. This
   time the channel gets as far as restoring its unacknowledged messages (there are some only
   while ``acks_late`` tasks run: hence "two tries in four"), which needs a new connection pool,
   whose parameters are read from ``transport.client``: ``None.hostname``. ``AttributeError`` is
   not a connection error, so it escapes ``ignore_errors`` and stops the worker.

The channel here remembers the connection it was opened for, so that second close builds its pool
from it like the first would have: it then fails with an ordinary ``ConnectionError`` (Redis is
still down), which kombu ignores, and the worker reconnects. Selected in settings with
``CELERY_BROKER_TRANSPORT``; everything else is kombu's transport unchanged.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    """A Redis channel that can still build a connection pool after its transport was detached."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The kombu Connection (host, port, credentials) this channel was opened for.
        self._opened_for = self.connection.client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport.client is not None:
            return super()._connparams(asynchronous=asynchronous)
        # Detached by Connection.collect() while this channel was still closing (see the module
        # docstring): lend the transport its old connection for the time of this one read.
        transport.client = self._opened_for
        try:
            return super()._connparams(asynchronous=asynchronous)
        finally:
            transport.client = None


class Transport(redis.Transport):
    """kombu's Redis transport with the channel above."""

    Channel = Channel
