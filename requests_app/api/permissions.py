"""Anyone authenticated reads; only the owner of a request or staff change it; worker tokens stay in their study."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from requests_app.auth.principals import may_change_request, worker_token_of


def refuses_worker_token(request, view) -> bool:
    """True when the call carries a study-scoped worker token and the view does not accept those."""
    return worker_token_of(request.auth) is not None and not getattr(view, "accepts_worker_tokens", False)


WORKER_TOKEN_REFUSED = (
    "this is a worker token of one HPO study: it may only check out, heartbeat, report, fail and release "
    "points of that study and read it (under /api/v1/hpo/studies/<id>/)"
)


class IsAuthenticatedUser(BasePermission):
    """Authenticated, with the user's own credentials (the default of every view).

    Worker tokens are refused here unless the view sets ``accepts_worker_tokens = True`` and checks the study.
    """

    message = "authentication credentials were not provided"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if refuses_worker_token(request, view):
            self.message = WORKER_TOKEN_REFUSED
            return False
        return True


class IsOwnerOrStaffForWrites(IsAuthenticatedUser):
    """Reads for every authenticated user; writes on a request for its owner or staff."""

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        self.message = "only the owner of this request or a staff user may change it"
        return may_change_request(request.user, request.auth, obj)
