"""The beat's heartbeat: when a worker starts a task of the beat schedule, the time is recorded.

``/healthz`` needs "a recent beat answers". Nothing in the database says when beat last fired, so
the worker records it (Redis key when the broker is Redis, a file under ``IDDS_VAR_DIR`` for the
single-host demo). It proves beat sends and a worker runs: the chain an operator cares about.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from celery import Task
from celery.signals import task_prerun
from django.conf import settings

REDIS_KEY = "idds:monitor:beat-heartbeat"


def _beat_task_names() -> frozenset[str]:
    return frozenset(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())


def _file() -> Path:
    return Path(settings.VAR_DIR) / "beat-heartbeat"


def broker_redis() -> redis.Redis | None:
    """A client of the broker's Redis, or None when the broker is not Redis."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def beat_record(now: float | None = None) -> None:
    stamp = str(now if now is not None else time.time())
    client = broker_redis()
    if client is not None:
        client.set(REDIS_KEY, stamp)
    else:
        _file().write_text(stamp)


def beat_last() -> float | None:
    """Epoch seconds of the last beat-scheduled task a worker started, or None if never seen."""
    try:
        client = broker_redis()
        raw = client.get(REDIS_KEY) if client is not None else _file().read_text()
    except (OSError, redis.RedisError):
        return None
    if not raw:
        return None
    return float(raw)


@task_prerun.connect
def record_beat(sender: Task | None = None, **_: Any) -> None:
    """Record the heartbeat when the task that starts is one beat schedules."""
    if sender is None or sender.name not in _beat_task_names():
        return
    try:
        beat_record()
    except (OSError, redis.RedisError):
        # A heartbeat that cannot be written shows as a stale beat on /healthz; the task runs anyway.
        return
