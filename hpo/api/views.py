"""HPO REST API under /api/v1/hpo/studies/<request_id>/: points, the worker verbs and the study summary."""

from __future__ import annotations

from django.db import transaction
from django.utils.decorators import method_decorator
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from hpo import services
from requests_app.models import Content, Request
from requests_app.models.statuses import CollectionRelationType, ContentStatus

from . import serializers

POINT = r"(?P<point>[0-9]+)"
STATUS_NAMES = {label.lower(): value for value, label in ContentStatus.choices}


# Each service call is its own short transaction. Under ATOMIC_REQUESTS the collection-counter row lock taken by
# a report would be held until the response is rendered, serialising all workers (measured: 13 round trips/s
# whatever the number of clients).
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class StudyViewSet(viewsets.GenericViewSet):
    """One HPO study per request: list points, check out, heartbeat, report, fail, invalidate, summary."""

    lookup_field = "request_id"
    lookup_value_regex = "[0-9]+"
    serializer_class = serializers.PointSerializer
    queryset = Request.objects.none()

    def _study(self):
        request = Request.objects.visible_to(self.request.user).filter(pk=self.kwargs["request_id"]).first()
        if request is None:
            from requests_app.errors import NotFoundError

            raise NotFoundError(f"no request {self.kwargs['request_id']}")
        return services.study_for_request(request.pk)

    def _input(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _point(self, transform, name: str) -> dict:
        content = Content.objects.select_related("hpo_lease").get(
            collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT, name=name
        )
        return serializers.PointSerializer(content).data

    @extend_schema(responses=serializers.StudySummarySerializer)
    def retrieve(self, request, request_id: str) -> Response:
        """Best point and loss, counts per status, generations."""
        return Response(services.study_summary(transform=self._study()))

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="New, Processing, Available, Failed, FinalFailed, Deleted"),
            OpenApiParameter("worker", str, description="points leased to or reported by this worker"),
            OpenApiParameter("limit", int, description="at most this many points (default 1000)"),
        ],
        responses=serializers.PointSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def points(self, request, request_id: str) -> Response:
        """Points in id order, filtered by status and worker."""
        transform = self._study()
        queryset = Content.objects.filter(
            collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT
        ).select_related("hpo_lease")
        if status_name := request.query_params.get("status"):
            if status_name.lower() not in STATUS_NAMES:
                return Response(
                    {"error": f"unknown status {status_name!r}; use one of {sorted(STATUS_NAMES)}"}, status=400
                )
            queryset = queryset.filter(status=STATUS_NAMES[status_name.lower()])
        if worker := request.query_params.get("worker"):
            queryset = queryset.filter(hpo_lease__worker=worker) | queryset.filter(details__reported_by=worker)
        limit = min(int(request.query_params.get("limit", 1000) or 1000), 10_000)
        # Numeric id order: names are "0", "1", ..., created in that order.
        rows = queryset.order_by("id")[:limit]
        return Response(serializers.PointSerializer(rows, many=True).data)

    @extend_schema(request=serializers.CheckoutInput, responses=serializers.PointSerializer(many=True))
    @action(detail=True, methods=["post"])
    def checkout(self, request, request_id: str) -> Response:
        """Lease the next free point(s) to a worker; [] when none is free (see the summary for why)."""
        data = self._input(serializers.CheckoutInput)
        transform = self._study()
        points = services.points_checkout(
            transform=transform, worker=data["worker"], count=data["count"], lease_seconds=data.get("lease_seconds")
        )
        rows = Content.objects.filter(pk__in=[p.pk for p in points]).select_related("hpo_lease").order_by("id")
        return Response(serializers.PointSerializer(rows, many=True).data)

    @extend_schema(request=serializers.WorkerInput, responses=serializers.PointSerializer)
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/heartbeat")
    def heartbeat(self, request, request_id: str, point: str) -> Response:
        """Extend the worker's lease; 409 when it lost the point or the study ended."""
        data = self._input(serializers.WorkerInput)
        transform = self._study()
        services.point_heartbeat(
            transform=transform, name=point, worker=data["worker"], lease_seconds=data.get("lease_seconds")
        )
        return Response(self._point(transform, point))

    @extend_schema(request=serializers.ReportInput, responses=serializers.PointSerializer)
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/report")
    def report(self, request, request_id: str, point: str) -> Response:
        """Record the loss: the same loss again is 200 without change; a different one for an evaluated point 409."""
        data = self._input(serializers.ReportInput)
        transform = self._study()
        services.point_report(
            transform=transform, name=point, loss=data["loss"], worker=data["worker"], metrics=data["metrics"]
        )
        return Response(self._point(transform, point))

    @extend_schema(request=serializers.FailInput, responses=serializers.PointSerializer)
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/fail")
    def fail(self, request, request_id: str, point: str) -> Response:
        """The worker could not evaluate the point: it is reissued, or fails for good after its retries."""
        data = self._input(serializers.FailInput)
        transform = self._study()
        services.point_fail(transform=transform, name=point, worker=data["worker"], message=data["message"])
        return Response(self._point(transform, point))

    @extend_schema(request=serializers.WorkerInput, responses=serializers.PointSerializer)
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/release")
    def release(self, request, request_id: str, point: str) -> Response:
        """Give a leased point back unevaluated (the worker is stopping); no retry is spent."""
        data = self._input(serializers.WorkerInput)
        transform = self._study()
        services.point_release(transform=transform, name=point, worker=data["worker"])
        return Response(self._point(transform, point))

    @extend_schema(request=serializers.InvalidateInput, responses=serializers.PointSerializer)
    @action(detail=True, methods=["post"], url_path=f"points/{POINT}/invalidate")
    def invalidate(self, request, request_id: str, point: str) -> Response:
        """Exclude a point from what generators see (kept for audit); owner or staff only."""
        data = self._input(serializers.InvalidateInput)
        transform = self._study()
        owner_id = transform.request.owner_id
        if not (request.user.is_staff or (owner_id is not None and owner_id == request.user.pk)):
            raise PermissionDenied("only the owner of the study or a staff user may invalidate points")
        services.point_invalidate(transform=transform, name=point, reason=data["reason"])
        return Response(self._point(transform, point), status=http.HTTP_200_OK)
