from __future__ import annotations

from django.apps import AppConfig

# Connects the beat heartbeat to Celery's task_prerun signal in every process that loads Django.
from . import heartbeat  # noqa: F401


class MonitorConfig(AppConfig):
    name = "monitor"
