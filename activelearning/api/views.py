"""Active-learning REST API under /api/v1/activelearning/.

``loops/<request_id>/``: the loop; ``parameters/`` the parameter sets (``?status=new`` = to run); ``results/``
mode (a), the results of one task; ``steps/`` the audit trail, and mode (b) (POST: results in, the decision
out within ``wait`` seconds, or 202 with the step to fetch); ``messages/`` the loop's messages.
``uploads/``: sandbox tarballs in (POST, multipart ``file``) and out (``uploads/<sha256>/``) for workers.
Reads are open to every authenticated user; writes to the owner and staff.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction
from django.http import FileResponse
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from activelearning import selectors, services, uploads
from activelearning.models import Loop, Step, Upload
from requests_app import sandbox
from requests_app.auth.principals import may_change_request
from requests_app.errors import NotFoundError

from . import serializers

#: How often a step call looks whether its decision finished.
STEP_WAIT_INTERVAL = 0.01
MAX_ID = 2**63 - 1


def _id(raw: str) -> int:
    value = int(raw)
    if value > MAX_ID:
        raise NotFoundError(f"no request {raw}")
    return value


# Each service call commits on its own: a step call must see its decision's commit while it waits, and a report's
# loop lock must not be held while the response renders.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class LoopViewSet(viewsets.GenericViewSet):
    """One loop per active-learning request."""

    lookup_field = "request_id"
    lookup_value_regex = "[0-9]+"
    serializer_class = serializers.LoopSerializer
    queryset = Loop.objects.none()
    pagination_class = None

    def _loop(self, *, write: bool = False) -> Loop:
        loop = selectors.loop_for(user=self.request.user, request_id=_id(self.kwargs["request_id"]))
        if write and not may_change_request(self.request.user, self.request.auth, loop.transform.request):
            raise PermissionDenied("only the owner of the loop or a staff user may report to it")
        return loop

    def _input(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def retrieve(self, request, request_id: str) -> Response:
        return Response(serializers.LoopSerializer(self._loop()).data)

    @extend_schema(responses={200: serializers.TrialSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def parameters(self, request, request_id: str) -> Response:
        raw_iteration = request.query_params.get("iteration")
        iteration = int(raw_iteration) if raw_iteration and raw_iteration.isdigit() else None
        trials = selectors.loop_trials(
            loop=self._loop(), status=request.query_params.get("status"), iteration=iteration
        ).select_related("memo_of")
        return Response(serializers.TrialSerializer(trials, many=True).data)

    @extend_schema(request=serializers.ResultsInputSerializer, responses={200: serializers.ReportSerializer})
    @action(detail=True, methods=["post"], serializer_class=serializers.ResultsInputSerializer)
    def results(self, request, request_id: str) -> Response:
        loop = self._loop(write=True)
        data = self._input(serializers.ResultsInputSerializer)
        trial, step = services.trial_report(
            transform=loop.transform, name=data["name"], results=data["results"], metrics=data["metrics"]
        )
        body = {"trial": serializers.TrialSerializer(trial).data, "step": step.pk if step else None}
        return Response(body)

    @extend_schema(methods=["GET"], request=None, responses={200: serializers.StepSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=serializers.StepInputSerializer,
        responses={200: serializers.StepSerializer, 202: serializers.StepSerializer},
    )
    @action(detail=True, methods=["get", "post"], serializer_class=serializers.StepInputSerializer)
    def steps(self, request, request_id: str) -> Response:
        if request.method == "GET":
            return Response(serializers.StepSerializer(selectors.loop_steps(loop=self._loop()), many=True).data)
        loop = self._loop(write=True)
        data = self._input(serializers.StepInputSerializer)
        step = services.step_call(
            transform=loop.transform, parameters=data["parameters"], results=data["results"], metrics=data["metrics"]
        )
        deadline = time.monotonic() + min(data["wait"], settings.IDDS_AL_STEP_WAIT_SECONDS)
        while step.status in Step.OPEN and time.monotonic() < deadline:
            time.sleep(STEP_WAIT_INTERVAL)
            step.refresh_from_db()
        code = status.HTTP_202_ACCEPTED if step.status in Step.OPEN else status.HTTP_200_OK
        return Response(serializers.StepSerializer(step).data, status=code)

    @extend_schema(operation_id="v1_activelearning_loops_step_retrieve", responses={200: serializers.StepSerializer})
    @action(detail=True, methods=["get"], url_path=r"steps/(?P<step_id>[0-9]+)")
    def step(self, request, request_id: str, step_id: str) -> Response:
        step = selectors.loop_steps(loop=self._loop()).filter(pk=_id(step_id)).first()
        if step is None:
            raise NotFoundError(f"request {request_id} has no step {step_id}")
        return Response(serializers.StepSerializer(step).data)

    @extend_schema(responses={200: serializers.LoopMessageSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def messages(self, request, request_id: str) -> Response:
        messages = selectors.loop_messages(loop=self._loop())
        return Response(serializers.LoopMessageSerializer(messages, many=True).data)


class UploadViewSet(viewsets.GenericViewSet):
    """Sandbox tarballs: upload (owner recorded), list your own, download by checksum."""

    lookup_field = "sha256"
    lookup_value_regex = "[0-9a-f]{64}"
    serializer_class = serializers.UploadSerializer
    queryset = Upload.objects.none()
    parser_classes = [MultiPartParser]
    pagination_class = None

    def list(self, request) -> Response:
        return Response(serializers.UploadSerializer(selectors.upload_list(user=request.user), many=True).data)

    @extend_schema(
        request={"multipart/form-data": serializers.UploadInputSerializer},
        responses={201: serializers.UploadSerializer},
    )
    def create(self, request) -> Response:
        serializer = serializers.UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        file = serializer.validated_data["file"]
        upload = uploads.upload_store(stream=file, original_name=file.name, owner=request.user)
        return Response(serializers.UploadSerializer(upload).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)})
    def retrieve(self, request, sha256: str) -> FileResponse:
        upload = selectors.upload_list(user=request.user).filter(sha256=sha256).first()
        if upload is None:
            raise NotFoundError(f"no upload {sha256} of yours")
        path = sandbox.uploaded_file(upload.name)
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
