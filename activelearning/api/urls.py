"""Active-learning routes; the project includes them under /api/v1/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("activelearning/loops", views.LoopViewSet, basename="al-loop")
router.register("activelearning/uploads", views.UploadViewSet, basename="al-upload")

urlpatterns = router.urls
