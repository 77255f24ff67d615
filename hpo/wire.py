"""The /idds/hpo/ endpoints of the iDDS client (``get_hyperparameters``, ``update_hyperparameter``).

Here and not in the core's ``requests_app.wire``: the core never imports a work-type app, and these calls need
HPO's services. They use the core adapter's decoding, auth and error form, so the two halves answer alike.

GET reads points and changes nothing, as in the original (a read that leased points would hand them to anyone
who looks). PUT records a loss through ``point_report`` for the caller's ``Principal``: the same rules as the
native report, so a point leased to another worker over /api/v1/ stays theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from django.urls import re_path

from hpo import services, study_selectors
from hpo.callers import token_and_study
from requests_app.auth.principals import may_change_request, worker_token_of
from requests_app.auth.tokens import TokenRefused, token_accept
from requests_app.models import Content, Request, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus, RequestType
from requests_app.wire.auth import Caller, authenticate
from requests_app.wire.encoding import enum_value, segment, segment_int
from requests_app.wire.endpoint import wire_view
from requests_app.wire.errors import WireError, bad_request, no_object, not_allowed

#: Most points one GET returns when no limit is given (a study has at most tens of thousands).
MAX_POINTS = 100_000
UPDATED = {"status": 0, "message": "update successfully"}


@dataclass(frozen=True)
class StudyCaller(Caller):
    """An oidc caller with the study of the path's request id (or None), both found by one query."""

    study: Transform | None = None


def _authenticate(request: HttpRequest, path: dict[str, str]) -> Caller:
    """The caller; for oidc calls naming a request id and no workload id (how workers call), its study with it.

    Anything unusual (another auth type, an unknown or refused token, a workload id) is authenticated by the
    core's ``authenticate``, which gives the refusals; the study is then looked up by ``_study`` as before.
    """
    raw_id = path.get("request_id") or ""
    if (
        request.headers.get("X-IDDS-Auth-Type") == "oidc"
        and segment(path.get("workload_id")) is None
        and raw_id.isascii()
        and raw_id.isdigit()
    ):
        found = token_and_study(request.headers.get("X-IDDS-Auth-Token", "").strip(), int(raw_id))
        if found is not None:
            try:
                token_accept(found.token)
            except TokenRefused:
                pass
            else:
                return StudyCaller(user=found.user, token=found.token, study=found.study)
    return authenticate(request)


def _study(caller: Caller, workload_id: str, request_id: str) -> Transform:
    """The study named by request id and/or workload id that the caller may read; NoObject otherwise."""
    rid, wid = segment_int(request_id, "request_id"), segment_int(workload_id, "workload_id")
    if rid is None and wid is None:
        raise bad_request("give a request_id or a workload_id")
    token = worker_token_of(caller.token)
    if token is not None and rid is not None and token.study_id != rid:
        raise not_allowed(f"this worker token belongs to study {token.study_id}, not to study {rid}")
    found = caller.study if isinstance(caller, StudyCaller) else None
    if found is not None and wid is None and found.request_id == rid:
        return found
    studies = study_selectors.studies().filter(request__in=Request.objects.visible_to(caller.user))
    if rid is not None:
        studies = studies.filter(request_id=rid)
    if wid is not None:
        studies = studies.filter(request__workload_id=wid)
    if token is not None:
        studies = studies.filter(request_id=token.study_id)
    study = studies.order_by("-request_id").first()
    if study is None:
        raise no_object(f"no hyperparameter-optimisation study for request_id {request_id}, workload_id {workload_id}")
    return study


def _is_unplanned_study(caller: Caller, workload_id: str, request_id: str) -> bool:
    """An HPO request the caller can see whose study the clerk had not created when ``_study`` looked.

    Not "has no transform now": the clerk may commit the study between the two queries, and the
    answer at the moment ``_study`` looked ("none yet") is still the right one.
    """
    requests = Request.objects.visible_to(caller.user).filter(request_type=RequestType.HYPER_PARAMETER_OPT)
    rid, wid = segment_int(request_id, "request_id"), segment_int(workload_id, "workload_id")
    if rid is not None:
        requests = requests.filter(pk=rid)
    if wid is not None:
        requests = requests.filter(workload_id=wid)
    return requests.exists()


def _points(transform: Transform):
    return Content.objects.filter(
        collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT
    )


def _get_hyperparameters(
    request: HttpRequest,
    caller: Caller,
    workload_id: str,
    request_id: str,
    id: str | None = None,  # noqa: A002 - the client's name for the point id
    status: str | None = None,
    limit: str | None = None,
) -> list[dict]:
    try:
        transform = _study(caller, workload_id, request_id)
    except WireError as refusal:
        # The client's "none yet": a study just submitted has no points until the clerk has planned it.
        # Only for "no such study": a refused token or a bad id stays refused.
        if refusal.exception_class == "NoObject" and _is_unplanned_study(caller, workload_id, request_id):
            return []
        raise
    queryset = _points(transform)
    if segment(id) is not None:
        queryset = queryset.filter(name=id)
    if segment(status) is not None:
        queryset = queryset.filter(status=enum_value(status, ContentStatus, "status"))
    else:
        # Invalidated points are kept for audit only; generators and workers never see them.
        queryset = queryset.exclude(status=ContentStatus.DELETED)
    count = segment_int(limit, "limit") or MAX_POINTS
    points = queryset.order_by("id").values_list("name", "details")[: min(count, MAX_POINTS)]
    return [
        {"id": name, "parameters": (details or {}).get("parameters"), "loss": (details or {}).get("loss")}
        for name, details in points
    ]


def _update_hyperparameter(
    request: HttpRequest,
    caller: Caller,
    workload_id: str,
    request_id: str,
    id: str | None = None,  # noqa: A002
    status: str | None = None,
    limit: str | None = None,
) -> dict:
    """PUT /hpo/<wid>/<rid>/<id>/<loss>: the route shares GET's segments, so the loss arrives as ``status``."""
    loss = status
    if segment(id) is None or loss is None or limit is not None:
        raise bad_request("update_hyperparameter is PUT /hpo/<workload_id>/<request_id>/<id>/<loss>")
    transform = _study(caller, workload_id, request_id)
    if not may_change_request(caller.user, caller.token, transform.request):
        raise not_allowed("only the owner of the study, a staff user or a worker token of this study may report")
    services.point_report(transform=transform, principal=caller.principal, name=id, loss=_loss(loss))
    return UPDATED


def _loss(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"loss: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise bad_request(f"loss: must be finite, got {raw!r}")
    return value


S = r"(?P<{}>[^/]+)"
_PREFIX = rf"^hpo/{S.format('workload_id')}/{S.format('request_id')}"

# Each call is its own short transaction (see hpo/api/views.py: a lock held to the end of the response
# serialises every worker).
hyperparameters = transaction.non_atomic_requests(
    wire_view({"GET": _get_hyperparameters, "PUT": _update_hyperparameter}, authenticator=_authenticate)
)

urlpatterns = [
    re_path(
        rf"{_PREFIX}(?:/{S.format('id')}(?:/{S.format('status')}(?:/{S.format('limit')})?)?)?/?$",
        hyperparameters,
        name="idds-hpo",
    ),
]
