"""HPO REST API under /api/v1/hpo/studies/<request_id>/: points, the worker verbs and the study summary.

Reads are open to every authenticated user; the point verbs are for the study's owner, staff, or a worker
token of the study (``hpo.api.access``), and act only on the caller's own leases (``hpo.services``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from hpo import services, study_selectors
from requests_app.auth.principals import Principal, principal_of, worker_token_of
from requests_app.models import Content
from requests_app.models.statuses import CollectionRelationType

from . import serializers
from .access import study_for_call
from .schema import error_responses

POINT = r"(?P<point>[0-9]+)"


# Each service call is its own short transaction. Under ATOMIC_REQUESTS the collection-counter row lock taken by
# a report would be held until the response is rendered, serialising all workers (measured: 13 round trips/s
# whatever the number of clients).
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class StudyViewSet(viewsets.GenericViewSet):
    """One HPO study per request: list points, check out, heartbeat, report, fail, invalidate, summary."""

    lookup_field = "request_id"
    lookup_value_regex = "[0-9]+"
    serializer_class = serializers.PointSerializer
    queryset = Content.objects.none()
    # points/ and checkout/ answer a bare list, and the schema must say so.
    pagination_class = None
    # Worker tokens of a study may read it and work its points (study_for_call checks which study).
    accepts_worker_tokens = True

    def _study(self, *, write: bool = True):
        return study_for_call(self.request, self.kwargs["request_id"], write=write)

    def _principal(self) -> Principal:
        return principal_of(self.request.user, self.request.auth)

    def _input(self, serializer_class, data=None) -> dict:
        serializer = serializer_class(data=self.request.data if data is None else data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _point(self, transform, name: str) -> dict:
        content = Content.objects.select_related("hpo_lease").get(
            collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT, name=name
        )
        return serializers.PointSerializer(content).data

    @extend_schema(responses={200: serializers.StudySummarySerializer, **error_responses(403)})
    def retrieve(self, request, request_id: str) -> Response:
        """Best point and loss, counts per status, generations."""
        return Response(study_selectors.study_summary(transform=self._study(write=False)))

    @extend_schema(
        parameters=[serializers.PointsQuery],
        responses={200: serializers.PointSerializer(many=True), **error_responses(400, 403)},
    )
    @action(detail=True, methods=["get"])
    def points(self, request, request_id: str) -> Response:
        """Points in id order, filtered by status and worker."""
        transform = self._study(write=False)
        # A plain dict, not the QueryDict: DRF reads an empty HTML-form value as "not given", and the
        # schema says an empty ``status`` or ``worker`` is invalid.
        query = self._input(serializers.PointsQuery, request.query_params.dict())
        queryset = Content.objects.filter(
            collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT
        ).select_related("hpo_lease")
        if "status" in query:
            queryset = queryset.filter(status=query["status"])
        if worker := query.get("worker"):
            queryset = queryset.filter(hpo_lease__worker=worker) | queryset.filter(details__reported_by=worker)
        # Numeric id order: names are "0", "1", ..., created in that order.
        rows = queryset.order_by("id")[: query["limit"]]
        return Response(serializers.PointSerializer(rows, many=True).data)

    @extend_schema(
        request=serializers.CheckoutInput,
        responses={200: serializers.PointSerializer(many=True), **error_responses(400, 403)},
    )
    @action(detail=True, methods=["post"])
    def checkout(self, request, request_id: str) -> Response:
        """Lease the next free point(s) to the caller's worker; [] when none is free (see the summary for why)."""
        transform = self._study()
        data = self._input(serializers.CheckoutInput)
        points = services.points_checkout(
            transform=transform,
            principal=self._principal(),
            worker=data["worker"],
            count=data["count"],
            lease_seconds=data.get("lease_seconds"),
        )
        # The service returns the points with their new leases: no second read.
        return Response(serializers.PointSerializer(points, many=True).data)

    @extend_schema(
        request=serializers.WorkerInput,
        responses={200: serializers.PointSerializer, **error_responses(400, 403, 409)},
    )
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/heartbeat")
    def heartbeat(self, request, request_id: str, point: str) -> Response:
        """Extend the caller's lease; 409 when it lost the point or the study ended."""
        transform = self._study()
        data = self._input(serializers.WorkerInput)
        services.point_heartbeat(
            transform=transform,
            principal=self._principal(),
            name=point,
            worker=data["worker"],
            lease_seconds=data.get("lease_seconds"),
        )
        return Response(self._point(transform, point))

    @extend_schema(
        request=serializers.ReportInput,
        responses={200: serializers.PointSerializer, **error_responses(400, 403, 409)},
    )
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/report")
    def report(self, request, request_id: str, point: str) -> Response:
        """Record the loss: the same loss again is 200 without change; a different one, or an ended study, 409."""
        transform = self._study()
        data = self._input(serializers.ReportInput)
        content, _ = services.point_report(
            transform=transform,
            principal=self._principal(),
            name=point,
            loss=data["loss"],
            worker=data["worker"],
            metrics=data["metrics"],
        )
        # The service returns the point as stored, without its (dropped) lease: no second read.
        return Response(serializers.PointSerializer(content).data)

    @extend_schema(
        request=serializers.IntermediateInput,
        responses={200: serializers.IntermediateResultSerializer, **error_responses(400, 403, 409)},
    )
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/intermediate")
    def intermediate(self, request, request_id: str, point: str) -> Response:
        """Record a value reached while evaluating (step, value); the study's early-stopping rule answers
        continue or stop. On stop the point is recorded as pruned, its loss the value just reported."""
        transform = self._study()
        data = self._input(serializers.IntermediateInput)
        content, verdict = services.point_intermediate(
            transform=transform,
            principal=self._principal(),
            name=point,
            worker=data["worker"],
            step=data["step"],
            value=data["value"],
        )
        return Response(
            {
                "id": content.name,
                "step": data["step"],
                "value": data["value"],
                "decision": verdict.decision,
                "reason": verdict.reason,
                "point": serializers.PointSerializer(content).data,
            }
        )

    @extend_schema(
        request=serializers.FailInput,
        responses={200: serializers.PointSerializer, **error_responses(400, 403, 409)},
    )
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/fail")
    def fail(self, request, request_id: str, point: str) -> Response:
        """The caller could not evaluate its point: it is reissued, or fails for good after its retries."""
        transform = self._study()
        data = self._input(serializers.FailInput)
        services.point_fail(
            transform=transform,
            principal=self._principal(),
            name=point,
            worker=data["worker"],
            message=data["message"],
        )
        return Response(self._point(transform, point))

    @extend_schema(
        request=serializers.WorkerInput,
        responses={200: serializers.PointSerializer, **error_responses(400, 403, 409)},
    )
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/release")
    def release(self, request, request_id: str, point: str) -> Response:
        """Give the caller's leased point back unevaluated (the worker is stopping); no retry is spent."""
        transform = self._study()
        data = self._input(serializers.WorkerInput)
        services.point_release(transform=transform, principal=self._principal(), name=point, worker=data["worker"])
        return Response(self._point(transform, point))

    @extend_schema(
        request=serializers.InvalidateInput,
        responses={200: serializers.PointSerializer, **error_responses(400, 403)},
    )
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/invalidate")
    def invalidate(self, request, request_id: str, point: str) -> Response:
        """Exclude a point from what generators see (kept for audit); owner or staff only, not worker tokens."""
        if worker_token_of(request.auth) is not None:
            raise PermissionDenied("a worker token may not invalidate points; the owner or staff may")
        transform = self._study()
        data = self._input(serializers.InvalidateInput)
        services.point_invalidate(transform=transform, name=point, reason=data["reason"])
        return Response(self._point(transform, point))


class PingApi(APIView):
    """Authenticate and answer, nothing else: a worker's credentials check, and the floor of bench/hpo_service.py
    (what one authenticated request costs on this server, against which the point verbs are measured)."""

    accepts_worker_tokens = True

    @extend_schema(responses={200: serializers.PingSerializer, **error_responses()})
    def get(self, request) -> Response:
        """``{"ok": true}`` for any valid token (worker tokens included)."""
        return Response({"ok": True})
