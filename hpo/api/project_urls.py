"""The project's URL map with the HPO API mounted under /api/v1/ even before idds_site/urls.py includes it.

Used by the HPO tests and ``hpo.api.wsgi`` (the service benchmark); once the project includes
``hpo.api.urls`` itself, this is the project's map unchanged.
"""

from __future__ import annotations

from django.urls import include, path

from idds_site.urls import urlpatterns as project_urlpatterns


def _mounted(patterns: list) -> bool:
    return any(getattr(p, "urlconf_name", None) == "hpo.api.urls" for p in patterns)


urlpatterns = (
    project_urlpatterns
    if _mounted(project_urlpatterns)
    else [path("api/v1/", include("hpo.api.urls")), *project_urlpatterns]
)
