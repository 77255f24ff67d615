from __future__ import annotations

from django.apps import AppConfig


class HpoConfig(AppConfig):
    name = "hpo"
