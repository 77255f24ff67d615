"""OpenAPI pieces shared by the HPO endpoints: the error body and the error responses each operation documents."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class HpoErrorSerializer(serializers.Serializer):
    """The API's error body: what is wrong, and per field when input was refused."""

    error = serializers.CharField()
    errors = serializers.DictField(child=serializers.CharField(), required=False)


ERROR_DESCRIPTIONS = {
    400: "invalid input; `errors` names each field",
    401: "no credentials, or an unknown, revoked or expired token",
    403: "not the owner, staff or a worker token of this study",
    404: "no such request, study or point",
    409: "conflicts with the current state (the study ended, the point is someone else's, ...)",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """``{code: OpenApiResponse}`` for ``extend_schema(responses=...)``; 401 and 404 apply everywhere here."""
    return {
        code: OpenApiResponse(HpoErrorSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in sorted({401, 404, *codes})
    }
