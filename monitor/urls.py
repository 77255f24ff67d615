"""The monitor's pages, mounted at the site's root (``/``)."""

from __future__ import annotations

from django.urls import path

from . import actions, ops_views, views, worktype_views

app_name = "monitor"

urlpatterns = [
    path("", views.home, name="home"),
    path("requests/", views.request_table, name="requests"),
    path("requests/<str:request_id>/", views.request_detail, name="request"),
    path("requests/<str:request_id>/<str:action>/", actions.request_action, name="action"),
    path("files/<str:content_id>/", views.file_detail, name="file"),
    path("carousel/", worktype_views.carousel, name="carousel"),
    path("hpo/", worktype_views.hpo_studies, name="hpo"),
    path("hpo/<int:request_id>/", worktype_views.hpo_study, name="hpo_study"),
    path("active-learning/", worktype_views.active_learning, name="active_learning"),
    path("active-learning/<int:request_id>/", worktype_views.active_learning_loop, name="al_loop"),
    path("statistics/", ops_views.statistics, name="statistics"),
    path("health/", ops_views.service_health, name="health"),
]
