"""Native REST API under /api/v1/ (reads are ViewSets; writes go through the services)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from requests_app import selectors
from requests_app.services import requests as request_services

# ``schema`` registers the OpenAPI extension of ChoiceField as it is imported.
from . import filters, schema, serializers  # noqa: F401
from .fields import INT64, ascii_integer
from .pagination import AscendingIdCursorPagination
from .permissions import IsOwnerOrStaffForWrites

ACTIONS = {
    "abort": request_services.request_abort,
    "suspend": request_services.request_suspend,
    "resume": request_services.request_resume,
    "retry": request_services.request_retry,
    "finish": request_services.request_finish,
}


def id_or_404(value: object) -> int:
    """A path id as an int; anything that could not be a bigint id is simply not found."""
    number = ascii_integer(str(value))
    if number is None or not 1 <= number <= INT64[1]:
        raise Http404("not found")
    return number


class IdLookupMixin:
    """Path ids are ASCII digits (other paths do not route) within bigint (others are 404)."""

    lookup_value_regex = "[0-9]+"

    def get_object(self):
        self.kwargs[self.lookup_field] = id_or_404(self.kwargs[self.lookup_field])
        return super().get_object()


class RequestViewSet(IdLookupMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Requests: submit, list with filters, detail, and the operator actions as POST."""

    serializer_class = serializers.RequestSerializer
    filterset_class = filters.RequestFilter
    permission_classes = [IsOwnerOrStaffForWrites]

    def get_queryset(self):
        return selectors.request_list(user=self.request.user)

    @extend_schema(request=serializers.RequestCreateSerializer, responses={201: serializers.RequestSerializer})
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
        obj = get_object_or_404(self.get_queryset(), pk=id_or_404(pk))
        self.check_object_permissions(request, obj)
        updated = ACTIONS[name](request=obj, actor=request.user.get_username())
        updated.refresh_from_db()
        return Response(self.get_serializer(updated).data)

    @extend_schema(request=None, responses={200: serializers.RequestSerializer})
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        return self._act(request, pk, "abort")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._act(request, pk, "suspend")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._act(request, pk, "resume")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._act(request, pk, "retry")

    @extend_schema(request=None, responses={200: serializers.RequestSerializer})
    @action(detail=True, methods=["post"])
    def finish(self, request, pk=None):
        return self._act(request, pk, "finish")

    @extend_schema(responses={200: serializers.EventSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=AscendingIdCursorPagination)
    def events(self, request, pk=None):
        obj = get_object_or_404(self.get_queryset(), pk=id_or_404(pk))
        page = self.paginate_queryset(selectors.request_events(request=obj))
        return self.get_paginated_response(serializers.EventSerializer(page, many=True).data)


class TransformViewSet(IdLookupMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.TransformSerializer
    filterset_class = filters.TransformFilter

    def get_queryset(self):
        return selectors.transform_list()


class ProcessingViewSet(IdLookupMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ProcessingSerializer
    filterset_class = filters.ProcessingFilter

    def get_queryset(self):
        return selectors.processing_list()


class CollectionViewSet(IdLookupMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.CollectionSerializer
    filterset_class = filters.CollectionFilter

    def get_queryset(self):
        return selectors.collection_list()


class ContentViewSet(IdLookupMixin, viewsets.ReadOnlyModelViewSet):
    """Contents; filter by ``collection`` and ``status`` (a campaign has millions: always page)."""

    serializer_class = serializers.ContentSerializer
    filterset_class = filters.ContentFilter
    pagination_class = AscendingIdCursorPagination

    def get_queryset(self):
        return selectors.content_list()


class MessageViewSet(IdLookupMixin, viewsets.ReadOnlyModelViewSet):
    """The outbox; the REST pull for consumers: ``?after=<last msg_pk seen>`` in outbox order."""

    serializer_class = serializers.MessageSerializer
    filterset_class = filters.MessageFilter
    pagination_class = AscendingIdCursorPagination

    def get_queryset(self):
        return selectors.message_list()
