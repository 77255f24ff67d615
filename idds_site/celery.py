"""Celery application: queues, routing and the beat schedule come from Django settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")

app = Celery("idds_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
