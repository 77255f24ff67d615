"""WSGI entry point serving the project with the HPO API mounted (see hpo/api/project_urls.py)."""

from __future__ import annotations

import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
django.setup()
# Before the first request builds the resolver: swap in the map that includes the HPO routes.
settings.ROOT_URLCONF = "hpo.api.project_urls"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
