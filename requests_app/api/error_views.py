"""Django's error views, answered in the API's JSON error shape under /api/.

Errors that happen outside DRF (an unrouted path, a crash anywhere) reach
these handlers (``handler400`` ... ``handler500`` in ``idds_site/urls.py``). Under /api/ they answer
``{"error": ...}``; elsewhere (admin, monitor pages) Django's HTML pages stay. A server error
gets an id that the client sees and the log holds, so a report can be matched to its traceback.
"""

from __future__ import annotations

import logging
import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger("idds.api.errors")

API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def internal_error_response(request: HttpRequest) -> JsonResponse:
    """Log the exception being handled with a fresh id, and answer 500 with that id."""
    error_id = str(uuid.uuid4())
    # Called while the exception is being handled, so the traceback goes into the log with the id.
    logger.error("internal error %s on %s %s", error_id, request.method, request.path, exc_info=True)
    return JsonResponse({"error": "internal error", "error_id": error_id}, status=500)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"error": "bad request"}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"error": str(exception) or "permission denied"}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"error": f"not found: {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return internal_error_response(request)
    return defaults.server_error(request)
