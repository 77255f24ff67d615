"""Routes of the /idds/ wire protocol (mounted at /idds/ by idds_site/urls.py; HPO's are in hpo/wire.py).

Segments are ``[^/]+``: ids, ``null``/``None``, names and enum values are all decoded in the views, so a bad
value is the client's BadRequest with the field named, not a 404 from the router.
"""

from __future__ import annotations

from django.urls import re_path

from . import views

S = r"(?P<{}>[^/]+)"
#: The ids every catalog path starts with, in the client's order.
CATALOG = ("request_id", "transform_id", "workload_id")


def _segments(*names: str) -> str:
    return "/".join(S.format(name) for name in names)


def _optional(*names: str) -> str:
    # "/a(/b(/c)?)?)?": the 2..6-segment forms of GET /request.
    pattern = ""
    for name in reversed(names):
        pattern = f"(?:/{S.format(name)}{pattern})?"
    return pattern


urlpatterns = [
    re_path(r"^ping/?$", views.ping, name="idds-ping"),
    re_path(r"^request/?$", views.request_create, name="idds-request-create"),
    re_path(rf"^request/abort/{_segments('request_id')}{_optional('workload_id', 'task_id')}/?$", views.request_abort),
    re_path(rf"^request/close/{_segments('request_id')}{_optional('workload_id')}/?$", views.request_close),
    re_path(rf"^request/retry/{_segments('request_id')}{_optional('workload_id')}/?$", views.request_retry),
    re_path(rf"^request/{_segments('request_id')}/?$", views.request_update_or_get, name="idds-request"),
    re_path(
        rf"^request/{_segments('request_id', 'workload_id')}"
        rf"{_optional('with_detail', 'with_metadata', 'with_transform', 'with_processing')}/?$",
        views.request_get,
        name="idds-request-get",
    ),
    re_path(
        rf"^message/{_segments('request_id', 'workload_id', 'transform_id', 'internal_id')}/?$",
        views.message,
        name="idds-message",
    ),
    re_path(
        rf"^catalog/collections/{_segments(*CATALOG, 'scope', 'name', 'relation_type')}/?$",
        views.collections,
        name="idds-collections",
    ),
    re_path(
        rf"^catalog/contents/{_segments(*CATALOG, 'coll_scope', 'coll_name', 'relation_type', 'status')}/?$",
        views.contents,
        name="idds-contents",
    ),
]
