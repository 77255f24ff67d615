"""A worker killed in the middle of a staging and started again loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings as django_settings
from django.db import connection

from idds_site.celery import app as celery_app
from requests_app.models import Content, Message, Request
from requests_app.models.statuses import CollectionRelationType, ContentStatus, RequestStatus
from requests_app.services.carrier import polls_enqueue_due
from requests_app.services.watchdog import watchdog_sweep
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
TIME_SCALE = "40"


@contextmanager
def session_worker_paused(worker) -> Iterator[None]:
    """Stop the in-process test worker from taking tasks, so only the worker under test does."""
    queues = list(django_settings.IDDS_QUEUES)
    for queue in queues:
        replies = celery_app.control.cancel_consumer(queue, destination=[worker.hostname], reply=True)
        assert "ok" in replies[0][worker.hostname], replies
    try:
        yield
    finally:
        for queue in queues:
            celery_app.control.add_consumer(queue, destination=[worker.hostname], reply=True)


def worker_process() -> subprocess.Popen:
    """A real Celery worker process on the test database and broker."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idds_site.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "IDDS_TAPE_TIME_SCALE": TIME_SCALE,
        # A dead worker's claims expire quickly, so the restarted one takes its work over.
        "IDDS_CLAIM_SECONDS": "2",
    }
    command = [sys.executable, "-m", "celery", "-A", "idds_site", "worker", "-P", "solo", "-l", "WARNING"]
    command += ["-Q", ",".join(django_settings.IDDS_QUEUES)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def available(request_ids: list[int]) -> int:
    return Content.objects.filter(
        collection__request_id__in=request_ids,
        collection__relation_type=CollectionRelationType.OUTPUT,
        status=ContentStatus.AVAILABLE,
    ).count()


def test_it_loses_nothing_when_the_worker_is_killed_mid_staging_and_started_again(
    celery_worker, settings, tape_catalogue, submit_stagein
):
    # given: two datasets staging on a real worker process
    settings.IDDS_TAPE_TIME_SCALE = float(TIME_SCALE)
    specs = tape_catalogue(datasets=2, files=20)
    with session_worker_paused(celery_worker):
        first = worker_process()
        try:
            request_ids = [submit_stagein(spec) for spec in specs]
            wait_for(lambda: available(request_ids) >= 5, timeout=120, what="some files released")

            # when: the worker dies without warning, and a new one starts
            kill(first)
            landed_before_restart = available(request_ids)
            second = worker_process()
        except BaseException:
            kill(first)
            raise
        try:

            def beat_and_check() -> bool:
                # The periodic safety net (beat) re-enqueues what the dead worker held.
                polls_enqueue_due(grace_seconds=0)
                watchdog_sweep(stale_seconds=1)
                return not Request.objects.filter(pk__in=request_ids).exclude(status=RequestStatus.FINISHED).exists()

            wait_for(beat_and_check, timeout=180, interval=0.5, what="both requests finished after the restart")
        finally:
            kill(second)

    # then
    assert landed_before_restart < 40
    assert available(request_ids) == 40
    names = [
        entry["name"]
        for body in Message.objects.filter(request_id__in=request_ids, msg_type="file_stagein").values_list(
            "body", flat=True
        )
        for entry in body["files"]
    ]
    assert len(names) == len(set(names)) == 40
    assert Message.objects.filter(request_id__in=request_ids, msg_type="collection_stagein").count() == 2
