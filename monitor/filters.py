"""The monitor's query-string filters: parsed once, so every page and its JSON twin share them.

Every filter lives in the URL (a view can be shared); bad values fall back to the default instead
of answering an error page, because these links are typed and edited by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils import timezone

from requests_app.models.statuses import ContentStatus, RequestStatus, RequestType

#: "show N entries" choices of the request table and the file list.
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
#: Time windows (days) offered on the dashboard; 0 = all time.
WINDOWS = (1, 7, 30, 365, 0)
DEFAULT_WINDOW_DAYS = 7
#: Sortable columns of the request table -> the ORM ordering (request columns only: indexed, cheap).
SORTS = {
    "request_id": "id",
    "scope": "scope",
    "name": "name",
    "status": "status",
    "type": "request_type",
    "workload_id": "workload_id",
    "requester": "requester",
    "created": "created_at",
    "updated": "updated_at",
}
#: The deepest page the table pages to: paging is bounded (the search narrows further).
MAX_PAGE = 1000
SEARCH_CHARS = 200


def _int(raw: str | None, default: int, allowed: tuple[int, ...] | None = None, *, low: int = 0) -> int:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return default
    value = int(raw)
    if allowed is not None and value not in allowed:
        return default
    return max(value, low)


def _choice(raw: str | None, choices: type[RequestStatus] | type[RequestType]) -> int | None:
    """A status or type given by its label ("Finished") or its iDDS integer."""
    if not raw:
        return None
    for member in choices:
        if raw == member.label or raw == str(member.value):
            return member.value
    return None


def _text(raw: str | None) -> str:
    # NUL cannot go into a PostgreSQL query; everything else is a literal (the ORM binds it).
    return (raw or "").replace("\x00", "").strip()[:SEARCH_CHARS]


@dataclass(frozen=True)
class RequestFilters:
    """Filters of the dashboard and the request table."""

    request_type: int | None = None
    status: int | None = None
    scope: str = ""
    requester: str = ""
    search: str = ""
    days: int = DEFAULT_WINDOW_DAYS
    sort: str = "request_id"
    descending: bool = True
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_query(cls, query: QueryDict) -> RequestFilters:
        sort = query.get("sort", "request_id")
        return cls(
            request_type=_choice(query.get("type"), RequestType),
            status=_choice(query.get("status"), RequestStatus),
            scope=_text(query.get("scope")),
            requester=_text(query.get("requester")),
            search=_text(query.get("q")),
            days=_int(query.get("days"), DEFAULT_WINDOW_DAYS, WINDOWS),
            sort=sort if sort in SORTS else "request_id",
            descending=query.get("dir", "desc") != "asc",
            page=min(_int(query.get("page"), 1, low=1), MAX_PAGE),
            page_size=_int(query.get("n"), DEFAULT_PAGE_SIZE, PAGE_SIZES),
        )

    @property
    def since(self) -> datetime | None:
        return timezone.now() - timedelta(days=self.days) if self.days else None

    def query(self, **changes: object) -> str:
        """This filter set as a query string, with ``changes`` applied (links keep every filter)."""
        current = replace(self, **changes) if changes else self
        params: dict[str, object] = {}
        if current.request_type is not None:
            params["type"] = RequestType(current.request_type).label
        if current.status is not None:
            params["status"] = RequestStatus(current.status).label
        for key, value in (("scope", current.scope), ("requester", current.requester), ("q", current.search)):
            if value:
                params[key] = value
        if current.days != DEFAULT_WINDOW_DAYS:
            params["days"] = current.days
        if current.sort != "request_id" or not current.descending:
            params["sort"] = current.sort
            params["dir"] = "desc" if current.descending else "asc"
        if current.page != 1:
            params["page"] = current.page
        if current.page_size != DEFAULT_PAGE_SIZE:
            params["n"] = current.page_size
        return urlencode(params)

    def as_dict(self) -> dict[str, object]:
        return {
            "type": RequestType(self.request_type).label if self.request_type is not None else None,
            "status": RequestStatus(self.status).label if self.status is not None else None,
            "scope": self.scope,
            "requester": self.requester,
            "q": self.search,
            "days": self.days,
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
            "page": self.page,
            "n": self.page_size,
        }


@dataclass(frozen=True)
class FileFilters:
    """Filters of a collection's file list: keyset paging by id (``after`` / ``before``)."""

    status: int | None = None
    search: str = ""
    after: int = 0
    before: int = 0
    page_size: int = DEFAULT_PAGE_SIZE
    # A name search pages by name: the name its page starts after.
    after_name: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> FileFilters:
        status = query.get("fstatus")
        status_value = None
        if status:
            for member in ContentStatus:
                if status in (member.label, str(member.value)):
                    status_value = member.value
        return cls(
            status=status_value,
            search=_text(query.get("fq")),
            after=_int(query.get("after"), 0),
            before=_int(query.get("before"), 0),
            page_size=_int(query.get("fn"), DEFAULT_PAGE_SIZE, PAGE_SIZES),
            # A cursor is a whole file name (up to 255 characters), taken as it is.
            after_name=(query.get("fafter") or "").replace("\x00", "")[:255],
        )

    def query(self, **changes: object) -> str:
        current = replace(self, **changes) if changes else self
        params: dict[str, object] = {}
        if current.status is not None:
            params["fstatus"] = ContentStatus(current.status).label
        if current.search:
            params["fq"] = current.search
        if current.after:
            params["after"] = current.after
        if current.before:
            params["before"] = current.before
        if current.page_size != DEFAULT_PAGE_SIZE:
            params["fn"] = current.page_size
        if current.after_name:
            params["fafter"] = current.after_name
        return urlencode(params)
