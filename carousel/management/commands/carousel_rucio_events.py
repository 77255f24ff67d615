"""carousel_rucio_events: record Rucio's transfer-done messages for the stage-in fast path.

    ./manage.py carousel_rucio_events        # IDDS_RUCIO_EVENTS_STOMP, IDDS_RUCIO_EVENTS_DESTINATION

Runs beside the Celery worker when ``IDDS_RUCIO_EVENTS`` is on (docs/rucio.md); stops on SIGTERM
or SIGINT. One recorder per deployment.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from carousel.rucio_events import EventRecorder


class Command(BaseCommand):
    help = "Record Rucio's transfer-done/-failed messages (from Hermes, over STOMP) for the stage-in polls."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        recorder = EventRecorder(
            broker=settings.IDDS_RUCIO_EVENTS_STOMP,
            destination=settings.IDDS_RUCIO_EVENTS_DESTINATION,
            username=settings.IDDS_RUCIO_EVENTS_USERNAME,
            password=settings.IDDS_RUCIO_EVENTS_PASSWORD,
            retention_seconds=settings.IDDS_RUCIO_EVENTS_RETENTION_SECONDS,
        )
        recorder.run(stop)
        self.stdout.write(f"recorded {recorder.recorded} Rucio transfer events")
