"""One wrapper for every wire view: CSRF exempt, authenticate, dispatch by method, 200 JSON or client error."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .auth import Caller, authenticate
from .encoding import json_response
from .errors import WireError, error_response

Handler = Callable[..., Any]
#: Who calls, from the request and its path segments (``authenticate`` unless a view needs more at once).
Authenticator = Callable[[HttpRequest, dict[str, str]], Caller]


def _by_headers(request: HttpRequest, path: dict[str, str]) -> Caller:
    return authenticate(request)


def wire_view(
    handlers: dict[str, Handler], *, authenticator: Authenticator = _by_headers
) -> Callable[..., HttpResponse]:
    """A Django view answering ``handlers[method](request, caller, **path)`` as the client expects.

    Token-authenticated, so CSRF does not apply (no cookie is ever read). The body is read before anything
    else: a server that answers without consuming it can leave the client's keep-alive connection broken.
    ``authenticator`` may find more than the caller in the same query (``hpo.wire``: the study); it must
    refuse exactly as ``authenticate`` does.
    """

    @csrf_exempt
    def view(request: HttpRequest, **path: str) -> HttpResponse:
        try:
            request.body  # noqa: B018 - consumed on purpose, see above
            handler = handlers.get(request.method or "")
            if handler is None:
                allowed = ", ".join(sorted(handlers))
                raise WireError(f"{request.method} is not allowed here; use {allowed}", status=405)
            caller: Caller = authenticator(request, path)
            return json_response(handler(request, caller, **path))
        except Exception as exc:  # every refusal and every bug leaves in the client's error form
            return error_response(exc)

    first = next(iter(handlers.values()))
    return wraps(first)(view)
