"""HPO routes; the project includes them under /api/v1/ (``path("api/v1/", include("hpo.api.urls"))``)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("hpo/studies", views.StudyViewSet, basename="hpo-study")

urlpatterns = router.urls
