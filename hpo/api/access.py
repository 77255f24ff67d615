"""Which study a call names, and whether the caller may read it or work its points."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied

from hpo import study_selectors
from hpo.callers import MAX_ID
from requests_app.auth.principals import may_change_request, worker_token_of
from requests_app.errors import NotFoundError
from requests_app.models import Request, Transform

NOT_YOURS = "only the owner of the study, a staff user or a worker token of this study may work its points"


def id_from_url(raw: str, what: str = "request") -> int:
    """An id from the URL (digits by the route), or NotFoundError when no row can have it."""
    value = int(raw)
    if value > MAX_ID:
        raise NotFoundError(f"no {what} {raw}")
    return value


def refuse_foreign_worker_token(auth: object, request_id: int) -> None:
    """A worker token may only name its own study; checked before any query."""
    token = worker_token_of(auth)
    if token is not None and token.study_id != request_id:
        raise PermissionDenied(f"this worker token belongs to study {token.study_id}, not to study {request_id}")


def study_for_call(http_request, raw_request_id: str, *, write: bool) -> Transform:
    """The study a call names, in one query; 403 when a write (or a worker token) is not the caller's to make."""
    user, auth = http_request.user, http_request.auth
    request_id = id_from_url(raw_request_id)
    refuse_foreign_worker_token(auth, request_id)
    visible = Request.objects.visible_to(user)
    transform = study_selectors.studies().filter(request__in=visible, request_id=request_id).first()
    if transform is None:
        if not visible.filter(pk=request_id).exists():
            raise NotFoundError(f"no request {request_id}")
        raise NotFoundError(f"request {request_id} has no hyperparameter-optimisation study")
    if write and not may_change_request(user, auth, transform.request):
        raise PermissionDenied(NOT_YOURS)
    return transform
