"""HPO routes; the project includes them under /api/v1/ (``path("api/v1/", include("hpo.api.urls"))``)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import tokens, views

router = SimpleRouter()
router.register("hpo/studies", views.StudyViewSet, basename="hpo-study")
router.register(
    r"hpo/studies/(?P<request_id>[0-9]+)/worker-tokens", tokens.WorkerTokenViewSet, basename="hpo-worker-token"
)

urlpatterns = [path("hpo/ping/", views.PingApi.as_view(), name="hpo-ping"), *router.urls]
