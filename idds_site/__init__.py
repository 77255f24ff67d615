"""Django project of the intelligent Data Delivery Service."""

from __future__ import annotations

# The Celery app is imported lazily by Django's app loading (see idds_site.celery) so that
# `python3 tools/bootstrap.py` keeps working on a machine where nothing is installed yet.
try:
    from .celery import app as celery_app
except ModuleNotFoundError:  # pragma: no cover - only before the virtualenv exists
    celery_app = None

__all__ = ["celery_app"]
