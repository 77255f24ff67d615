"""Read what hand-offs really put on the Redis broker (no worker consumes it during these tests)."""

from __future__ import annotations

import base64
import json

from idds_site.celery import app as celery_app


def _queued(queue: str) -> list[dict]:
    """Every message waiting in ``queue``, oldest first, as kombu wrote it."""
    with celery_app.connection_for_read() as connection:
        client = connection.default_channel.client
        # kombu's Redis transport LPUSHes and BRPOPs: the oldest message is at the right end.
        raw = list(reversed(client.lrange(queue, 0, -1)))
    return [json.loads(item) for item in raw]


def queued_headers(queue: str) -> list[dict]:
    """The Celery headers (task name, ``eta``, ...) of every message waiting in ``queue``, oldest first."""
    return [message["headers"] for message in _queued(queue)]


def queued_tasks(queue: str) -> list[tuple[str, tuple]]:
    """(task name, args) of every message waiting in ``queue``, oldest first."""
    tasks = []
    for message in _queued(queue):
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], tuple(args)))
    return tasks


def purge_queues() -> None:
    """Empty every declared queue, so a test reads only what it enqueued."""
    celery_app.control.purge()
