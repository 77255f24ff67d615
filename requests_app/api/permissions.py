"""Anyone authenticated reads; only the owner of a request or staff change it."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class IsOwnerOrStaffForWrites(BasePermission):
    message = "only the owner of this request or a staff user may change it"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user.is_staff or (obj.owner_id is not None and obj.owner_id == request.user.pk))
