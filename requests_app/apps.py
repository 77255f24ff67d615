from __future__ import annotations

from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    """Core of the service: data model, agents, native REST API."""

    name = "requests_app"
    verbose_name = "Requests"
