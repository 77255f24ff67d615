"""The owner's actions from the request page: abort, suspend, resume, retry, finish.

The one place the monitor writes, and it writes through the very services the API calls
(``requests_app.services.requests``), so both paths obey the same transition table and hand-offs.
pyproject.toml's "the monitor only reads" contract ignores exactly this import and no other.
Login and ownership (owner or staff, as the API's ``IsOwnerOrStaffForWrites``) are checked here;
Django's CSRF middleware checks the form's token.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from requests_app.errors import ApplicationError
from requests_app.models import Request
from requests_app.services import requests as request_services

ACTIONS = {
    "abort": request_services.request_abort,
    "suspend": request_services.request_suspend,
    "resume": request_services.request_resume,
    "retry": request_services.request_retry,
    "finish": request_services.request_finish,
}
ACTION_NAMES = tuple(ACTIONS)


def may_act(user, request: Request) -> bool:
    """Owner or staff, as for the API's writes."""
    return bool(user.is_authenticated and (user.is_staff or request.owner_id == user.pk))


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    if request.GET.get("format") == "json":
        return JsonResponse({"error": message, "errors": {}}, status=status)
    return HttpResponseForbidden(message) if status == 403 else HttpResponse(message, status=status)


@require_POST
def request_action(request: HttpRequest, request_id: str, action: str) -> HttpResponse:
    """Run ``action`` on the request for its owner, then go back to its page with the outcome."""
    if action not in ACTIONS or not request_id.isascii() or not request_id.isdigit() or len(request_id) > 19:
        return _refused(request, "no such action or request", 404)
    obj = Request.objects.filter(pk=int(request_id)).first()
    if obj is None:
        return _refused(request, f"request {request_id} not found", 404)
    if not request.user.is_authenticated:
        return _refused(request, "log in to act on a request", 403)
    if not may_act(request.user, obj):
        return _refused(request, f"only the owner of request {obj.pk} (or staff) may {action} it", 403)
    try:
        ACTIONS[action](request=obj, actor=request.user.get_username())
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{action} requested for request {obj.pk}")
    return redirect("monitor:request", request_id=obj.pk)
