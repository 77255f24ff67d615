"""Cursor pagination by id: constant cost per page however large the table (no OFFSET, no COUNT)."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination

from .fields import INT64, ascii_integer


class IdCursorPagination(CursorPagination):
    """DRF's cursor pagination, strict about its two query parameters.

    ``page_size`` outside 1..``max_page_size`` is a 400 rather than silently replaced. A cursor
    that is not one the server wrote is 404 (DRF's answer for a page that does not exist),
    including a forged position that would otherwise reach the database as a non-integer id.
    """

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        size = ascii_integer(raw)
        if size is None or not 1 <= size <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: f"must be an integer from 1 to {self.max_page_size}"})
        return size

    def decode_cursor(self, request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        position = ascii_integer(cursor.position)
        if position is None or not INT64[0] <= position <= INT64[1]:
            raise NotFound(self.invalid_cursor_message)
        return cursor._replace(position=position)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            if parameter["name"] == self.cursor_query_param:
                parameter["description"] = "the cursor of a next/previous link; any other value is 404"
        return parameters


class AscendingIdCursorPagination(IdCursorPagination):
    """Oldest first: contents in creation order, messages in outbox order."""

    ordering = "id"
