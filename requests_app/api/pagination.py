"""Cursor pagination by id: constant cost per page however large the table (no OFFSET, no COUNT)."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class AscendingIdCursorPagination(IdCursorPagination):
    """Oldest first: contents in creation order, messages in outbox order."""

    ordering = "id"
