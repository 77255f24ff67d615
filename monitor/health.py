"""Probes of the service's parts for the health page, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection

from idds_site.celery import app as celery_app

from .heartbeat import beat_last, broker_redis

#: Workers answer a ping within milliseconds on a healthy broker; the page waits no longer than this.
PING_SECONDS = 0.1
#: Who answered is kept this long per web process, so a refreshing health page does not wait each time.
WORKERS_CACHE_SECONDS = 10
WORKERS_CACHE_KEY = "monitor:workers-seen"


def database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return False, str(exc)[:200]
    return True, "ok"


def broker_ok() -> tuple[bool, str]:
    """Redis answers PING; the filesystem broker (demo) is a folder that must exist."""
    client = broker_redis()
    if client is None:
        folder = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("data_folder_in", "")
        return (not folder or Path(folder).is_dir()), "filesystem broker"
    try:
        client.ping()
    except redis.RedisError as exc:
        return False, str(exc)[:200]
    return True, "ok"


def beat_state() -> dict[str, Any]:
    """When beat's tasks last ran and whether that is recent (a few periods of the fastest entry)."""
    last = beat_last()
    age = time.time() - last if last is not None else None
    return {
        "last_run_epoch": last,
        "age_seconds": round(age, 1) if age is not None else None,
        "recent": age is not None and age <= settings.IDDS_MONITOR_BEAT_MAX_AGE,
    }


def queue_lengths() -> dict[str, int | None]:
    """Messages waiting per Celery queue (Redis lists); None when the broker is not Redis."""
    client = broker_redis()
    if client is None:
        return dict.fromkeys(settings.IDDS_QUEUES)
    try:
        with client.pipeline() as pipe:
            for name in settings.IDDS_QUEUES:
                pipe.llen(name)
            lengths = pipe.execute()
    except redis.RedisError:
        return dict.fromkeys(settings.IDDS_QUEUES)
    return dict(zip(settings.IDDS_QUEUES, lengths, strict=True))


def workers_seen() -> dict[str, list[str]]:
    """Workers that answer within PING_SECONDS, with the queues each consumes (cached a few seconds)."""
    cached = cache.get(WORKERS_CACHE_KEY)
    if cached is not None:
        return cached
    try:
        replies = celery_app.control.inspect(timeout=PING_SECONDS).active_queues() or {}
    except (OSError, redis.RedisError):
        return {}
    seen = {worker: sorted(queue["name"] for queue in queues) for worker, queues in sorted(replies.items())}
    cache.set(WORKERS_CACHE_KEY, seen, WORKERS_CACHE_SECONDS)
    return seen


def healthz() -> tuple[bool, dict[str, Any]]:
    """The load balancer's answer: healthy only when the database, the broker and a recent beat answer."""
    database, database_detail = database_ok()
    broker, broker_detail = broker_ok()
    beat = beat_state()
    healthy = database and broker and beat["recent"]
    return healthy, {
        "status": "ok" if healthy else "unhealthy",
        "database": {"ok": database, "detail": database_detail},
        "broker": {"ok": broker, "detail": broker_detail},
        "beat": {"ok": beat["recent"], **beat},
    }
