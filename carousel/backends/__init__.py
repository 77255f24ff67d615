"""Staging backends, chosen by ``settings.IDDS_STAGING_BACKEND`` (simulator | rucio)."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from .base import StagingBackend

BACKENDS = {
    "simulator": "carousel.backends.simulator.SimulatorBackend",
    "rucio": "carousel.backends.rucio.RucioBackend",
}


def get_backend() -> StagingBackend:
    """A backend instance for the configured ``IDDS_STAGING_BACKEND`` (built from the settings)."""
    backend_class = import_string(BACKENDS[settings.IDDS_STAGING_BACKEND])
    from_settings = getattr(backend_class, "from_settings", None)
    return from_settings() if from_settings is not None else backend_class()
