"""Worker tokens of a study over REST: the owner (or staff) issues, lists and revokes them.

POST   /api/v1/hpo/studies/<id>/worker-tokens/              issue; the key is in this answer only
GET    /api/v1/hpo/studies/<id>/worker-tokens/              list (prefixes, never keys)
DELETE /api/v1/hpo/studies/<id>/worker-tokens/<token_id>/   revoke
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from requests_app.auth.principals import may_manage_worker_tokens
from requests_app.auth.tokens import token_issue, token_revoke
from requests_app.errors import NotFoundError
from requests_app.models import ApiToken, Request
from requests_app.models.statuses import RequestType

from . import serializers
from .access import id_from_url
from .schema import error_responses


class WorkerTokenViewSet(viewsets.GenericViewSet):
    """Issue, list and revoke the worker tokens of one HPO study."""

    serializer_class = serializers.WorkerTokenSerializer
    queryset = ApiToken.objects.none()
    pagination_class = None
    lookup_field = "token_id"
    lookup_value_regex = "[0-9]+"

    def _study_request(self) -> Request:
        """The study's request, if the caller may manage its tokens (owner or staff, never a worker token)."""
        request_id = id_from_url(self.kwargs["request_id"])
        study = Request.objects.visible_to(self.request.user).filter(pk=request_id).first()
        if study is None or study.request_type != RequestType.HYPER_PARAMETER_OPT:
            raise NotFoundError(f"no hyperparameter-optimisation request {request_id}")
        if not may_manage_worker_tokens(self.request.user, self.request.auth, study):
            raise PermissionDenied("only the owner of the study or a staff user may manage its worker tokens")
        return study

    @extend_schema(responses={200: serializers.WorkerTokenSerializer(many=True), **error_responses(403)})
    def list(self, request, request_id: str) -> Response:
        """The study's worker tokens, newest first; revoked and expired ones too (``state`` says which)."""
        tokens = ApiToken.objects.filter(study=self._study_request()).select_related("user")
        return Response(serializers.WorkerTokenSerializer(tokens, many=True).data)

    @extend_schema(
        request=serializers.WorkerTokenInput,
        responses={201: serializers.IssuedWorkerTokenSerializer, **error_responses(400, 403, 409)},
    )
    def create(self, request, request_id: str) -> Response:
        """Issue a worker token for this study; its ``key`` is shown in this answer only."""
        study = self._study_request()
        data = serializers.WorkerTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = token_issue(
            user=request.user,
            name=data.validated_data["name"],
            expires_days=data.validated_data.get("expires_days"),
            study=study,
        )
        issued.token.key = issued.key
        return Response(serializers.IssuedWorkerTokenSerializer(issued.token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **error_responses(403)})
    def destroy(self, request, request_id: str, token_id: str) -> Response:
        """Revoke a worker token of this study (it answers 401 from now on); repeating it is harmless."""
        study = self._study_request()
        token = ApiToken.objects.filter(study=study, pk=id_from_url(token_id, "worker token")).first()
        if token is None:
            raise NotFoundError(f"study {study.pk} has no worker token {token_id}")
        token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
