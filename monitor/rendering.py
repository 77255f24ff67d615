"""One view, two answers: the HTML page, or its JSON twin with ``?format=json``.

Also the read gate: pages are public unless ``IDDS_MONITOR_REQUIRE_LOGIN`` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from requests_app.models.statuses import REQUEST_TERMINAL


def wants_json(request: HttpRequest) -> bool:
    return request.GET.get("format") == "json"


def respond(
    request: HttpRequest, template: str, context: dict[str, Any], data: Callable[[], dict[str, Any]]
) -> HttpResponse:
    """The page rendered from ``context``, or ``data()`` as JSON (built only when asked for)."""
    if wants_json(request):
        return JsonResponse(data(), encoder=DjangoJSONEncoder, json_dumps_params={"ensure_ascii": False})
    return render(request, template, {"refresh_seconds": settings.IDDS_MONITOR_REFRESH_SECONDS, **context})


def not_found(request: HttpRequest, what: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"error": f"{what} not found", "errors": {}}, status=404)
    return render(request, "monitor/not_found.html", {"what": what}, status=404)


def readable(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let anyone read, unless the site requires a login for the monitor."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.IDDS_MONITOR_REQUIRE_LOGIN and not request.user.is_authenticated:
            if wants_json(request):
                return JsonResponse({"error": "authentication required", "errors": {}}, status=401)
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def is_live(status: int) -> bool:
    """Whether a request still changes (its page keeps refreshing)."""
    return status not in REQUEST_TERMINAL
