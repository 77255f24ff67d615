"""Routes of the native API (/api/v1/)."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("requests", views.RequestViewSet, basename="request")
router.register("transforms", views.TransformViewSet, basename="transform")
router.register("processings", views.ProcessingViewSet, basename="processing")
router.register("collections", views.CollectionViewSet, basename="collection")
router.register("contents", views.ContentViewSet, basename="content")
router.register("messages", views.MessageViewSet, basename="message")

urlpatterns = router.urls
