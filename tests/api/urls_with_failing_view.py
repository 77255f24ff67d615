"""The site's URLconf plus a view that fails, to test the JSON answer to a real server error."""

from __future__ import annotations

from django.urls import path

from idds_site.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def failing_view(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [*urlpatterns, path("api/v1/failing/", failing_view), path("failing-page/", failing_view)]
