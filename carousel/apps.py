from __future__ import annotations

from django.apps import AppConfig


class CarouselConfig(AppConfig):
    name = "carousel"
