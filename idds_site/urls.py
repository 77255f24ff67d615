"""URL map: native API under /api/v1/, the iDDS client protocol under /idds/, schema and docs, admin, monitor pages.

Errors raised outside DRF are answered by the handlers below: JSON under /api/, HTML elsewhere.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitor import ops_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("requests_app.api.urls")),
    path("api/v1/", include("hpo.api.urls")),
    path("api/v1/", include("activelearning.api.urls")),
    # Session login for the browser (the browsable API and the monitor pages).
    # The iDDS client's wire protocol (docs/idds-wire.md); HPO's calls live in the HPO app.
    path("idds/", include("requests_app.wire.urls")),
    path("idds/", include("hpo.wire")),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # For load balancers and Prometheus: outside the monitor's namespace, never behind its login.
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("", include("monitor.urls")),
]

handler400 = "requests_app.api.error_views.bad_request"
handler403 = "requests_app.api.error_views.permission_denied"
handler404 = "requests_app.api.error_views.page_not_found"
handler500 = "requests_app.api.error_views.server_error"
