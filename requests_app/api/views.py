"""Native REST API under /api/v1/ (reads are ViewSets; writes go through the services)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from requests_app.models import Collection, Content, Message, Processing, Request, Transform
from requests_app.services import requests as request_services

from . import filters, serializers
from .pagination import AscendingIdCursorPagination
from .permissions import IsOwnerOrStaffForWrites

ACTIONS = {
    "abort": request_services.request_abort,
    "suspend": request_services.request_suspend,
    "resume": request_services.request_resume,
    "retry": request_services.request_retry,
    "finish": request_services.request_finish,
}


class RequestViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Requests: submit, list with filters, detail, and the operator actions as POST."""

    serializer_class = serializers.RequestSerializer
    filterset_class = filters.RequestFilter
    permission_classes = [IsOwnerOrStaffForWrites]

    def get_queryset(self):
        return Request.objects.visible_to(self.request.user).select_related("owner")

    @extend_schema(
        request=serializers.RequestCreateSerializer,
        responses={201: serializers.RequestSerializer, 400: OpenApiResponse(description="what is wrong, per field")},
    )
    def create(self, request, *args, **kwargs):
        incoming = serializers.RequestCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        data.pop("status", None)
        created = request_services.request_create(
            request_type=data.pop("request_type"), metadata=data.pop("request_metadata"), owner=request.user, **data
        )
        body = self.get_serializer(created).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})

    def _act(self, request, pk, name: str) -> Response:
        obj = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(request, obj)
        updated = ACTIONS[name](request=obj, actor=request.user.get_username())
        updated.refresh_from_db()
        return Response(self.get_serializer(updated).data)

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        return self._act(request, pk, "abort")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._act(request, pk, "suspend")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._act(request, pk, "resume")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._act(request, pk, "retry")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def finish(self, request, pk=None):
        return self._act(request, pk, "finish")

    @extend_schema(responses={200: serializers.EventSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=AscendingIdCursorPagination)
    def events(self, request, pk=None):
        obj = get_object_or_404(self.get_queryset(), pk=pk)
        page = self.paginate_queryset(obj.events.all())
        return self.get_paginated_response(serializers.EventSerializer(page, many=True).data)


class TransformViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.TransformSerializer
    filterset_class = filters.TransformFilter

    def get_queryset(self):
        return Transform.objects.all()


class ProcessingViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ProcessingSerializer
    filterset_class = filters.ProcessingFilter

    def get_queryset(self):
        return Processing.objects.all()


class CollectionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.CollectionSerializer
    filterset_class = filters.CollectionFilter

    def get_queryset(self):
        return Collection.objects.all()


class ContentViewSet(viewsets.ReadOnlyModelViewSet):
    """Contents; filter by ``collection`` and ``status`` (a campaign has millions: always page)."""

    serializer_class = serializers.ContentSerializer
    filterset_class = filters.ContentFilter
    pagination_class = AscendingIdCursorPagination

    def get_queryset(self):
        return Content.objects.all()


class MessageViewSet(viewsets.ReadOnlyModelViewSet):
    """The outbox; the REST pull for consumers: ``?after=<last msg_pk seen>`` in outbox order."""

    serializer_class = serializers.MessageSerializer
    filterset_class = filters.MessageFilter
    pagination_class = AscendingIdCursorPagination

    def get_queryset(self):
        return Message.objects.all()
