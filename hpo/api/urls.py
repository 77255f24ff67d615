"""HPO routes; the project includes them under /api/v1/ (``path("api/v1/", include("hpo.api.urls"))``)."""

from __future__ import annotations

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import lean, tokens, views

router = SimpleRouter()
router.register("hpo/studies", views.StudyViewSet, basename="hpo-study")
router.register(
    r"hpo/studies/(?P<request_id>[0-9]+)/worker-tokens", tokens.WorkerTokenViewSet, basename="hpo-worker-token"
)

# Checkout and report are answered by plain views first (hpo/api/lean.py), which hand every call they do not
# take to the DRF view of the same route; the schema describes the DRF views (plain views are not enumerated).
_drf = {pattern.name: pattern for pattern in router.urls}
_lean = {"hpo-study-checkout": lean.checkout, "hpo-study-report": lean.report}

urlpatterns = [
    path("hpo/ping/", views.PingApi.as_view(), name="hpo-ping"),
    *(re_path(_drf[name].pattern.regex.pattern, fast(_drf[name].callback)) for name, fast in _lean.items()),
    *router.urls,
]
