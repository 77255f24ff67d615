"""Checkout and report, the two calls every evaluation makes, as plain Django views in front of the DRF ones.

A pilot's round trip is a checkout and a report. Through DRF each paid for content negotiation, the
authentication and permission classes, serializers in and out, and two queries before the service ran (the
token, then the study): together several times an authenticated no-op request. Here, for the call a pilot
makes (a token in ``Authorization``, a JSON body of the documented shape, a study it may work), one query
finds the token, its user and the study; the body is read by the API's own strict reader
(``requests_app.api.json_body``); the service is the same (``hpo.services``); the answer is the
``PointSerializer`` shape rendered by orjson.

Everything else is answered by the DRF view, unchanged: no or another credential (session login, with its
CSRF check), an unknown, revoked or expired token, another content type, a body or field the fast checks do
not take as is (a number sent as a string, a blank worker, ...), a study that is missing or not the caller's.
So every refusal, with its status and message, and the OpenAPI schema (which describes the DRF views) stay
exactly what they were: this module adds a faster way to the same answers and nothing else. Nothing is
written before the hand-over, so a call is never applied twice. Errors a service raises (a point that is
someone else's, an ended study) are rendered here in the API's error shape, as the DRF exception handler
renders them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from hpo import services
from hpo.callers import token_and_study
from hpo.models import PointLease
from requests_app.api.json_body import MalformedJSON, UnsafeJSON, load_body
from requests_app.auth.principals import Principal, may_change_request, principal_of
from requests_app.auth.tokens import TokenRefused, token_accept
from requests_app.errors import ApplicationError
from requests_app.models import ApiToken, Content, Transform
from requests_app.models.statuses import ContentStatus

from .serializers import MAX_LEASE_SECONDS, json_problem

View = Callable[..., HttpResponse]
#: ``Authorization`` schemes of ``ApiTokenAuthentication``.
SCHEMES = frozenset({"token", "bearer"})
_MISSING = object()


@dataclass(frozen=True)
class Call:
    """A call the fast path takes: its caller and the study it may work."""

    user: Any
    token: ApiToken
    transform: Transform

    @property
    def principal(self) -> Principal:
        return principal_of(self.user, self.token)


def _raw_key(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(header) != 2 or header[0].lower() not in SCHEMES or not header[1].isascii():
        return None
    return header[1]


def _call(request: HttpRequest, raw_request_id: str) -> Call | None:
    """The caller and its study in one query, or None for anything the DRF view must answer."""
    raw_key = _raw_key(request)
    found = token_and_study(raw_key, int(raw_request_id)) if raw_key is not None else None
    if found is None:
        return None
    token, user, transform = found.token, found.user, found.study
    try:
        token_accept(token)
    except TokenRefused:
        return None
    # The study is the one the path names, so a worker token passes only for its own study.
    if transform is None or not may_change_request(user, token, transform.request):
        return None
    return Call(user=user, token=token, transform=transform)


def _body(request: HttpRequest) -> dict | None:
    """The JSON object sent, read as ``StrictJSONParser`` reads it, or None."""
    if request.content_type != "application/json":
        return None
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.IDDS_MAX_PAYLOAD_BYTES:
            return None
        data = load_body(request.body) if request.body else {}
    except (ValueError, RequestDataTooBig, MalformedJSON, UnsafeJSON):
        return None
    return data if isinstance(data, dict) else None


def _worker(value: Any) -> str | None:
    """A worker name as ``serializers.worker_field`` takes it (a str, stripped, 1 to 255 characters)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= services.MAX_WORKER_LENGTH else None


def _int(value: Any, low: int, high: int) -> int | None:
    return value if type(value) is int and low <= value <= high else None


def _loss(value: Any) -> float | None:
    """A finite JSON number (an integer only where a float holds it exactly); None for the DRF view to judge."""
    if type(value) is int and abs(value) <= 2**53:
        return float(value)
    return value if type(value) is float and math.isfinite(value) else None


def _json(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def _utc(value) -> str | None:
    """A datetime as DRF's ``DateTimeField`` writes it (ISO 8601, ``Z`` for UTC)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def point_json(point: Content) -> dict[str, Any]:
    """``serializers.PointSerializer(point).data``, without DRF (tests/hpo/test_points_lean.py holds them equal).

    The point's lease must be loaded (or known to be none), as the services return points.
    """
    details = point.details or {}
    try:
        lease: PointLease | None = point.hpo_lease
    except Content.hpo_lease.RelatedObjectDoesNotExist:
        lease = None
    return {
        "id": point.name,
        "status": ContentStatus(point.status).label,
        "parameters": details.get("parameters", {}),
        "loss": details.get("loss") if point.status == ContentStatus.AVAILABLE else None,
        "metrics": details.get("metrics") or {},
        "provenance": details.get("provenance") or {},
        "worker": lease.worker if lease else details.get("reported_by"),
        "lease_expires_at": lease.expires_at.isoformat() if lease else None,
        "retries": point.retries,
        "failures": details.get("failures") or [],
        "pruned": bool(details.get("pruned")),
        "updated_at": _utc(point.updated_at),
    }


# --- the verbs: each returns None to hand the call to the DRF view ----------------------------------------


def _checkout(call: Call, data: dict, **_: str) -> HttpResponse | None:
    worker = _worker(data.get("worker"))
    count = _int(data.get("count", 1), 1, services.MAX_CHECKOUT)
    lease_seconds = data.get("lease_seconds", _MISSING)
    if lease_seconds is _MISSING:
        lease_seconds = None
    elif (lease_seconds := _int(lease_seconds, 1, MAX_LEASE_SECONDS)) is None:
        return None
    if worker is None or count is None:
        return None
    points = services.points_checkout(
        transform=call.transform, principal=call.principal, worker=worker, count=count, lease_seconds=lease_seconds
    )
    return _json([point_json(point) for point in points])


def _report(call: Call, data: dict, *, point: str, **_: str) -> HttpResponse | None:
    worker = data.get("worker", _MISSING)
    worker = "" if worker is _MISSING else _worker(worker)
    loss = _loss(data.get("loss"))
    metrics = data.get("metrics", _MISSING)
    metrics = {} if metrics is _MISSING else metrics
    if worker is None or loss is None or not isinstance(metrics, dict) or json_problem(metrics) is not None:
        return None
    content, _ = services.point_report(
        transform=call.transform, principal=call.principal, name=point, loss=loss, worker=worker, metrics=metrics
    )
    return _json(point_json(content))


def lean(verb: Callable[..., HttpResponse | None], fallback: View) -> View:
    """A view answering POSTs that ``verb`` takes, and everything else through ``fallback`` (the DRF view)."""

    @csrf_exempt
    @transaction.non_atomic_requests
    def view(request: HttpRequest, **path: str) -> HttpResponse:
        if request.method != "POST":
            return fallback(request, **path)
        call = _call(request, path["request_id"])
        data = _body(request) if call is not None else None
        if call is None or data is None:
            return fallback(request, **path)
        try:
            answer = verb(call, data, **path)
        except ApplicationError as exc:
            # What requests_app.api.exceptions.exception_handler answers for these.
            return _json({"error": exc.message, **exc.extra}, status=exc.http_status)
        except DataError:
            # Refused by the database before anything was written: the DRF view answers its 400.
            answer = None
        return answer if answer is not None else fallback(request, **path)

    return view


def checkout(fallback: View) -> View:
    return lean(_checkout, fallback)


def report(fallback: View) -> View:
    return lean(_report, fallback)
