"""Celery application: queues, routing and the beat schedule come from Django settings."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")

app = Celery("idds_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's ``current_app`` is thread-local: without a default, the request threads of a threaded gunicorn
# worker would see an empty app, and hand-offs (sent by name through ``current_app``) would go nowhere.
app.set_default()
app.autodiscover_tasks()


@task_prerun.connect
def recycle_database_connections(sender: Task | None = None, **_: Any) -> None:
    """Close connections that are too old or broken, as Django does before each HTTP request.

    Eager tasks run inside their caller's transaction, whose connection must not be touched.
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    close_old_connections()
